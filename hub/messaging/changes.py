"""Change announcements: which customers a system's data changed for, so that every hub process can
clear its cached reads and push fresh NBAs to its subscribers.

The announcement is written to the outbox in the same transaction as the change, and reaches every
process through the bus's broadcast (transient, per process): a process that was down has no cache to
clear and no subscriber to tell.
"""

from __future__ import annotations

from collections.abc import Iterable

from hub.events import CUSTOMER_CHANGED, CloudEvent, CustomerChanged, make, read

__all__ = ["CUSTOMER_CHANGED", "changed", "read_changed"]


def changed(source: str, system: str, customer_ids: Iterable[str]) -> CloudEvent:
    return make(CUSTOMER_CHANGED, CustomerChanged(system=system, customerIds=sorted(set(customer_ids))),
                source=source)


def read_changed(event: CloudEvent) -> tuple[str, list[str]]:
    data = read(event, CustomerChanged)
    return data.system, data.customerIds
