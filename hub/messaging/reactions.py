"""What runs after a commit that changed customers' data, in this process or another: clear the cached
reads of the system that changed; when CM's data changed, forget its cached decisions and push fresh
NBAs; wake the outbox relay."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from hub.events import CloudEvent
from hub.messaging.changes import read_changed
from hub.model import HUB_SYSTEM


class ChangeReactions:
    def __init__(
        self,
        instance: str,
        decision_system: Callable[[], str],
        invalidate: Callable[[Iterable[str], Iterable[str]], None],
        forget_decisions: Callable[[Iterable[str]], None],
        notify: Callable[[Iterable[str]], None],
        wake_relay: Callable[[], None],
    ):
        self._instance = instance  # names this process in its announcements, so it can skip its own
        self._decision_system = decision_system
        self._invalidate = invalidate
        self._forget_decisions = forget_decisions
        self._notify = notify
        self._wake_relay = wake_relay

    def committed(self, system: str, customer_ids: Iterable[str]) -> None:
        """This process committed a change of `system`'s data (and its announcement)."""
        ids = list(customer_ids)
        self._react(system, ids)
        self._wake_relay()

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
