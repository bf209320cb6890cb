"""The built-in back office.

A request of a kind configured as automatic (`automatic: [SERVICE]`) is settled when it is handed over:
completed straight through, with no person involved. Every other request waits, OPEN, in the CRM's work
queue, where an agent moves it with `updateRequestStatus`. It keeps no data of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import Field

from hub.ports import (
    AdapterConfig,
    AdapterContext,
    BackOffice,
    CustomerRequest,
    Health,
    PrivacyHandler,
    PrivacySubject,
    RequestKind,
    RequestStatus,
    StatusChange,
    Tx,
    utcnow,
)

BY = "backoffice"  # how the history names the back office's own steps


class BackOfficeConfig(AdapterConfig):
    automatic: list[RequestKind] = Field(
        default_factory=list, description="request kinds completed straight through, without a person"
    )
    note: str = Field(default="handled straight through", max_length=500)


class BuiltinBackOffice:
    """Entry point `builtin-backoffice`."""

    ports: ClassVar[tuple[type, ...]] = (BackOffice, PrivacyHandler)
    Config = BackOfficeConfig

    def __init__(self, ctx: AdapterContext):
        self.system = ctx.system
        config = ctx.config
        assert isinstance(config, BackOfficeConfig)
        self.config = config

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def check(self) -> Health:
        return Health(True, "in process")

    async def hand_over(self, tx: Tx, request: CustomerRequest) -> Sequence[StatusChange]:
        if request.kind not in self.config.automatic:
            return []  # waits in the work queue for a person
        return [StatusChange(RequestStatus.COMPLETED, utcnow(), BY, self.config.note)]

    # PrivacyHandler: the requests it works on are the CRM's; it keeps nothing of a customer itself.
    async def erase(self, tx: Tx, subject: PrivacySubject) -> str:
        return "keeps no customer data (the requests are the CRM's)"

    async def export(self, tx: Tx, subject: PrivacySubject) -> dict[str, Any]:
        return {}


class BusConfig(AdapterConfig):
    """No settings: the back office is reached through the mapping's flows."""


class BusBackOffice:
    """Entry point `bus-backoffice`: an external back office on the bus. It reads `request.submitted`
    from its flow's queue itself (a flow with `external: true`) and reports back with `request.status`
    events (a flow with `destination: hub`), correlated by request id. Nothing is settled at hand-over."""

    ports: ClassVar[tuple[type, ...]] = (BackOffice,)
    Config = BusConfig

    def __init__(self, ctx: AdapterContext):
        self.system = ctx.system

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def check(self) -> Health:
        return Health(True, "reached through the bus")

    async def hand_over(self, tx: Tx, request: CustomerRequest) -> Sequence[StatusChange]:
        return []  # request.submitted, in the same transaction, carries it to the back office
