"""What runs after a commit that changed customers' data, in this process or another: clear the cached
reads of the system that changed; when CM's data changed, forget its cached decisions and push fresh
NBAs; wake the outbox relay; and tell the other hub processes.

The announcement (`hub.customer.changed`) is published right after the commit, at most once, by the
process that committed: other processes react to it as this one did. It is a cue, not data: one lost to
a broker outage leaves another process serving its cached reads of those customers until their TTL. Not
writing it to the outbox keeps the relay's rounds and the consumers' transactions to the events that
carry data (measured: bench/RESULTS.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable

from hub.events import CloudEvent
from hub.messaging.changes import changed, read_changed
from hub.model import HUB_SYSTEM

log = logging.getLogger(__name__)
ANNOUNCED_AT_MOST = 500  # customer ids per announcement


class ChangeReactions:
    def __init__(
        self,
        instance: str,
        decision_system: Callable[[], str],
        invalidate: Callable[[Iterable[str], Iterable[str]], None],
        forget_decisions: Callable[[Iterable[str]], None],
        notify: Callable[[Iterable[str]], None],
        wake_relay: Callable[[], None],
        publish: Callable[[CloudEvent], Awaitable[None]],
    ):
        self._instance = instance  # names this process in its announcements, so it can skip its own
        self._decision_system = decision_system
        self._invalidate = invalidate
        self._forget_decisions = forget_decisions
        self._notify = notify
        self._wake_relay = wake_relay
        self._publish = publish
        # Changes committed while an announcement is on its way go out together in the next one: one
        # message per broker round trip under load, none delayed when the hub is quiet.
        self._waiting: dict[str, dict[str, None]] = {}
        self._sender: asyncio.Task[None] | None = None

    def committed(self, system: str, customer_ids: Iterable[str]) -> None:
        """This process committed a change of `system`'s data: react, and tell the other processes."""
        ids = list(customer_ids)
        self._react(system, ids)
        self._wake_relay()
        if ids:
            self._waiting.setdefault(system, {}).update(dict.fromkeys(ids))
            if self._sender is None:
                self._sender = asyncio.create_task(self._send())

    async def _send(self) -> None:
        try:
            while self._waiting:
                waiting, self._waiting = self._waiting, {}
                for system, ids in waiting.items():
                    listed = list(ids)
                    for at in range(0, len(listed), ANNOUNCED_AT_MOST):
                        chunk = listed[at : at + ANNOUNCED_AT_MOST]
                        await self._announce(changed(self._instance, system, chunk))
        finally:
            self._sender = None

    async def _announce(self, event: CloudEvent) -> None:
        try:
            await self._publish(event)
        except Exception as exc:  # at most once by contract: the others serve cached reads until the TTL
            log.warning(
                "change announcement not published (%s): other hub processes keep their cached reads of "
                "%d customers until the TTL",
                type(exc).__name__,
                len(event.data["customerIds"]),
            )

    async def close(self) -> None:
        """Wait for the announcements on their way (bounded by the bus's own timeout)."""
        if self._sender is not None:
            await asyncio.gather(self._sender, return_exceptions=True)

    async def heard(self, event: CloudEvent) -> None:
        """Another hub process changed customers' data (bus broadcast)."""
        if event.source == self._instance:
            return  # reacted already, at commit
        system, ids = read_changed(event)
        self._react(system, ids)

    def _react(self, system: str, ids: list[str]) -> None:
        if not ids:
            return
        # The hub's own cached reads of these customers (their contacts) go too: a contact started or
        # ended is announced as a change of the contact registry's data.
        self._invalidate(ids, [system, HUB_SYSTEM])
        if system == self._decision_system():
            self._forget_decisions(ids)  # before the push: subscribers re-decide on fresh data
            self._notify(ids)
