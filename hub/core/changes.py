"""Change announcements: which customers a system's data changed for, so that every hub process can
clear its cached reads and push fresh NBAs to its subscribers.

The announcement is written to the outbox in the same transaction as the change, and reaches every
process through the bus's broadcast (transient, per process): a process that was down has no cache to
clear and no subscriber to tell.
"""

from __future__ import annotations

from collections.abc import Iterable

from hub.events import CloudEvent, MalformedEvent

CUSTOMER_CHANGED = "hub.customer.changed"


def changed(source: str, system: str, customer_ids: Iterable[str]) -> CloudEvent:
    return CloudEvent(
        type=CUSTOMER_CHANGED,
        source=source,
        data={"system": system, "customerIds": sorted(set(customer_ids))},
    )


def read_changed(event: CloudEvent) -> tuple[str, list[str]]:
    system, ids = event.data.get("system"), event.data.get("customerIds")
    if not isinstance(system, str) or not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise MalformedEvent(f"{CUSTOMER_CHANGED} needs data.system and data.customerIds")
    return system, ids
