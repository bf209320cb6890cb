"""Use case: next best actions from the decision engine (CM), batched, bounded by its timeout, cached.

A decision engine that fails or does not answer in time is `SystemUnavailable` naming it: the API
answers with the rest of the data and that error, never INTERNAL (and with the default actions, below).

Decisions are cached per customer for a short time (`HUB_DECISION_CACHE_SECONDS`, 1 s: as long as CM's
own learning snapshot) and forgotten as soon as CM's data for the customer changes, in this process or
another (the change announcements). A decision asked while the customer changed is not kept.

The NBA budget (`HUB_NBA_BUDGET_MS`): a channel waits for NBAs on every page, so an answer waits for CM
at most the budget. Past it, the answer is the mapping's default actions (`decisions.fallback`), each
marked `fallback` with a `fallback:<offerId>` decision id, never cached; CM's call runs on (bounded by
its own timeout) and its late answer is kept like a timely one and pushed to the subscribers (`notify`).
A CM that fails within the budget gives the default actions too (`fallback()`), beside its error."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TypeVar

from cachetools import TTLCache

from hub.config.mapping import FallbackAction
from hub.core import reads
from hub.core.calls import call
from hub.core.errors import SystemUnavailable
from hub.model import Channel, ContactEvent, DecisionRequest, NextBestAction, Offer
from hub.observability import metrics
from hub.ports import DecisionEngine

log = logging.getLogger(__name__)
T = TypeVar("T")
Epochs = dict[str, int]  # customer -> the ChangeWatch epoch when CM was asked

FALLBACK_PREFIX = "fallback:"  # a default action's decision id: fallback:<offerId>
# With the decision cache off, a late answer is still kept this long, for the subscribers it is pushed to.
HANDOFF_SECONDS = 1.0

Slot = tuple[Channel | None, int]  # (channel, limit) of a request, within one customer's entry
Answer = list[list[NextBestAction]]
Notify = Callable[[Iterable[str]], None]


class Decisions:
    def __init__(
        self,
        system: str,
        engine: DecisionEngine,
        timeout: float,
        cache_seconds: float = 0.0,
        max_entries: int = 50_000,
        *,
        budget: float = 0.0,
        fallback: Sequence[FallbackAction] = (),
        notify: Notify | None = None,
    ):
        """`budget` (seconds, 0 = wait for CM up to its `timeout`): past it the `fallback` actions are
        answered and CM's late decision is kept and announced with `notify(customer_ids)`."""
        self.system = system
        self._engine = engine
        self._timeout = timeout
        self._cache: TTLCache[str, dict[Slot, list[NextBestAction]]] | None = (
            TTLCache(maxsize=max_entries, ttl=cache_seconds) if cache_seconds > 0 else None
        )
        # Where decisions are looked up and late ones kept: the cache, or (cache off) a short hand-off.
        self._kept: TTLCache[str, dict[Slot, list[NextBestAction]]] = (
            self._cache if self._cache is not None else TTLCache(maxsize=max_entries, ttl=HANDOFF_SECONDS)
        )
        # Which customers changed while CM was asked about them: an answer asked before then is not kept.
        self._watch = ChangeWatch()
        self._budget = budget
        self._fallback = sorted(fallback, key=lambda a: -a.priority)  # stable: ties keep mapping order
        self._notify = notify
        self._late: set[asyncio.Task[Answer]] = set()  # CM calls that outlived the budget

    def forget(self, customer_ids: Iterable[str]) -> None:
        """CM's data for these customers changed: their cached decisions are stale."""
        for cid in customer_ids:
            self._watch.bump(cid)
            self._kept.pop(cid, None)

    async def offers(self) -> Sequence[Offer]:
        reads.uncacheable()  # asked of the engine every time: an answer holding them is not kept
        return await self._call("offers", self._engine.offers())

    async def decide_each(
        self, requests: Sequence[DecisionRequest]
    ) -> list[list[NextBestAction] | BaseException]:
        """`decide`, with CM's unavailability as each request's answer (for the loaders that batch
        requests: each caller handles it, e.g. with the default actions)."""
        try:
            return list(await self.decide(requests))
        except SystemUnavailable as exc:
            return [exc for _ in requests]

    async def decide(
        self, requests: Sequence[DecisionRequest], pending: Sequence[ContactEvent] = ()
    ) -> list[list[NextBestAction]]:
        if not requests:
            return []
        kept = self._kept if not pending else None  # pending events: an answer for this call only
        if self._cache is None or pending:
            reads.uncacheable()
        found: dict[int, list[NextBestAction]] = {}
        if kept is not None:
            for i, r in enumerate(requests):
                entry = kept.get(r.customer_id)
                hit = entry.get((r.channel, r.limit)) if entry is not None else None
                if hit is not None:
                    found[i] = hit
                    reads.note(kept, r.customer_id, entry)
            metrics.read_cache("decision", self.system, len(found), len(requests) - len(found))
        missing = [r for i, r in enumerate(requests) if i not in found]
        if missing:
            asked = [r.customer_id for r in missing]
            epochs = self._watch.watch(asked)
            late = False
            try:
                answer = await metrics.nba_decision(self._within_budget(missing, pending, epochs))
                late = answer is None
                self._answered(requests, found, missing, answer, pending, epochs)
            finally:
                if not late:  # a late answer lets go when it lands
                    self._watch.release(asked)
        return [found[i] for i in range(len(requests))]

    def _answered(
        self,
        requests: Sequence[DecisionRequest],
        found: dict[int, list[NextBestAction]],
        missing: list[DecisionRequest],
        answer: Answer | None,
        pending: Sequence[ContactEvent],
        epochs: dict[str, int],
    ) -> None:
        """Fill `found` with CM's answer (or the defaults when it is late), keeping what may be kept."""
        if answer is None:  # CM is still deciding: the default actions now, its answer later
            reads.uncacheable()
            why = f"system {self.system!r} did not answer within {self._budget * 1000:g} ms"
            answer = [self._defaults(r, why) for r in missing]
            log.info(
                "decision engine %s over the NBA budget: default actions for %d requests",
                self.system,
                len(missing),
            )
            cache = None
        else:
            cache = self._cache if not pending else None
        fresh = iter(answer)
        for i, r in enumerate(requests):
            if i in found:
                continue
            found[i] = next(fresh)
            if cache is not None and self._watch.epoch(r.customer_id) == epochs[r.customer_id]:
                entry = cache.setdefault(r.customer_id, {})
                entry[(r.channel, r.limit)] = found[i]
                reads.note(cache, r.customer_id, entry)
            else:
                reads.uncacheable()  # the customer changed while CM answered, or a fallback

    async def decide_one(
        self, request: DecisionRequest, pending: Sequence[ContactEvent] = ()
    ) -> list[NextBestAction]:
        return (await self.decide([request], pending))[0]

    def fallback(self, request: DecisionRequest) -> list[NextBestAction]:
        """The default actions for a request CM could not decide (it failed: the caller has its error)."""
        reads.uncacheable()
        return self._defaults(request, f"system {self.system!r} is unavailable")

    async def close(self) -> None:
        """Stop the CM calls still running past the budget (their answers are no longer pushed)."""
        late = list(self._late)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)

    # --- the budget ---------------------------------------------------------------------------------

    async def _within_budget(
        self, missing: list[DecisionRequest], pending: Sequence[ContactEvent], epochs: dict[str, int]
    ) -> Answer | None:
        """CM's answer if it comes within the budget (its error if it fails within it); None past it,
        with the call left running to land later."""
        if self._budget <= 0:
            return await self._ask(missing, pending)
        work = asyncio.ensure_future(self._ask(missing, pending))
        try:
            done, _ = await asyncio.wait({work}, timeout=self._budget)
        except asyncio.CancelledError:
            work.cancel()  # the caller went away: so does its question
            raise
        if done:
            return work.result()
        self._late.add(work)
        work.add_done_callback(lambda task: self._landed(task, missing, bool(pending), epochs))
        return None

    def _landed(
        self,
        task: asyncio.Task[Answer],
        missing: list[DecisionRequest],
        pending: bool,
        epochs: dict[str, int],
    ) -> None:
        """A decision that outlived the budget arrived: keep it as a timely one would be, and push it."""
        self._late.discard(task)
        try:
            self._keep_late(task, missing, pending, epochs)
        finally:
            self._watch.release([r.customer_id for r in missing])

    def _keep_late(
        self, task: asyncio.Task[Answer], missing: list[DecisionRequest], pending: bool, epochs: Epochs
    ) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:  # hub.core.calls logged the failure; the defaults stand until CM answers
            log.info("late decision of %s for %d requests failed; nothing pushed", self.system, len(missing))
            return
        if pending:
            # Decided with events CM has not applied: for that call only. CM applying them announces
            # the change, and the subscribers are pushed a fresh decision then.
            return
        changed: dict[str, None] = {}
        for r, nbas in zip(missing, task.result(), strict=True):
            if self._watch.epoch(r.customer_id) != epochs[r.customer_id]:
                continue  # changed meanwhile: the change itself was pushed, and asks CM again
            # A new entry (a fresh TTL, and answers kept whole with the old one are stale).
            entry = dict(self._kept.get(r.customer_id) or {})
            entry[(r.channel, r.limit)] = nbas
            self._kept[r.customer_id] = entry
            changed[r.customer_id] = None
        if changed and self._notify is not None:
            self._notify(list(changed))

    def _defaults(self, request: DecisionRequest, why: str) -> list[NextBestAction]:
        out: list[NextBestAction] = []
        for action in self._fallback:
            if len(out) >= request.limit:
                break
            if not action.fits(request.channel):
                continue
            channel = request.channel or (action.channels[0] if action.channels else Channel.WEBSITE)
            out.append(
                NextBestAction(
                    offer_id=action.offer_id,
                    title=action.title,
                    channel=channel,
                    priority=action.priority,
                    score=0.0,
                    reason=f"default action: {why}",
                    decision_id=FALLBACK_PREFIX + action.offer_id,
                    fallback=True,
                )
            )
        return out

    async def _ask(self, requests: list[DecisionRequest], pending: Sequence[ContactEvent]) -> Answer:
        answer = await self._call("decide", self._engine.decide(requests, pending))
        if len(answer) != len(requests):
            log.error(
                "decision engine %s answered %d of %d requests", self.system, len(answer), len(requests)
            )
            raise SystemUnavailable(f"system {self.system!r} gave a malformed answer", system=self.system)
        return list(answer)

    async def _call(self, what: str, awaitable: Awaitable[T]) -> T:
        return await call(self.system, self._timeout, what, awaitable)


class ChangeWatch:
    """Which customers' CM data changed while CM was being asked about them. A customer is watched only
    while a question about them is out, so this holds as many entries as questions in flight, not one
    per customer ever asked about."""

    def __init__(self) -> None:
        self._epochs: dict[str, int] = {}
        self._watchers: dict[str, int] = {}

    def watch(self, customer_ids: Sequence[str]) -> dict[str, int]:
        """Start watching (once per id given; release the same list); their epochs now."""
        for cid in customer_ids:
            self._watchers[cid] = self._watchers.get(cid, 0) + 1
            self._epochs.setdefault(cid, 0)
        return {cid: self._epochs[cid] for cid in customer_ids}

    def bump(self, customer_id: str) -> None:
        if customer_id in self._epochs:
            self._epochs[customer_id] += 1

    def epoch(self, customer_id: str) -> int:
        return self._epochs.get(customer_id, 0)

    def release(self, customer_ids: Sequence[str]) -> None:
        for cid in customer_ids:
            left = self._watchers.get(cid, 0) - 1
            if left > 0:
                self._watchers[cid] = left
            else:
                self._watchers.pop(cid, None)
                self._epochs.pop(cid, None)
