"""The call center's work list.

The list the agents call from is kept by LM (the hub serves it as `query callbacks`: call-center leads
that are sent and not answered yet, oldest first). Delivering a lead to the call center is putting it
on that list, and LM does that when it records the lead as sent: this adapter has nothing to send
anywhere, and every delivery is "on the call list". The agent reads the lead's code and offer from the
list and phones the customer with the number the customer view shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from hub.ports import (
    AdapterConfig,
    AdapterContext,
    Delivery,
    DeliveryOutcome,
    Health,
    LeadChannel,
    OutboundChannel,
)

ON_THE_LIST = "on the call list"


class CallCenterConfig(AdapterConfig):
    """The call list takes no settings: a `config:` key under it is a mistake, and said so."""


class CallCenterChannel:
    """Entry point `callcenter-list`."""

    ports: ClassVar[tuple[type, ...]] = (OutboundChannel,)
    Config = CallCenterConfig
    channel: LeadChannel = LeadChannel.CALLCENTER

    def __init__(self, ctx: AdapterContext):
        self.system = ctx.system

    def __repr__(self) -> str:
        return f"CallCenterChannel(system={self.system!r})"

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def check(self) -> Health:
        return Health(True, "in process")

    async def deliver(self, batch: Sequence[Delivery]) -> Sequence[DeliveryOutcome]:
        sent = DeliveryOutcome(sent=True, detail=ON_THE_LIST)
        return [sent for _ in batch]
