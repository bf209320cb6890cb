"""The unified customer view: one batched fetch per profile source, concurrently, through a TTL cache,
translated by each system's mapping and merged by survivorship. A system that fails or times out
gives partial data; its latency is bounded by its timeout."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from cachetools import LRUCache, TTLCache
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.config.mapping import HubMapping
from hub.core import reads
from hub.core.calls import why
from hub.core.contacts import ContactService
from hub.core.identity import IdentityGraph
from hub.core.translate import Fragment, Translator
from hub.model import GOLDEN_ID, HUB_SYSTEM, Contact, CustomerView, Key
from hub.observability.metrics import read_cache, system_call
from hub.ports import ProfileSource
from hub.store.db import reading
from hub.store.tables import customers
from hub.store.types import any_of
from hub.waiting import bounded

log = logging.getLogger(__name__)

_MISSING = object()


class ProfileCache:
    """Adapter reads keyed per (system, customer), kept translated (a fragment; None when the system
    does not know the customer). Events that change a customer clear its entries; a mapping reload
    clears them all."""

    def __init__(self, ttl: float, maxsize: int):
        self._cache: TTLCache[tuple[str, str], Any] = TTLCache(maxsize=maxsize, ttl=ttl)
        # Customers known to exist. A golden id, once made, stays (until erasure forgets it): no TTL,
        # so a view whose systems' reads expired does not ask the store again whether it exists.
        self.known: LRUCache[str, bool] = LRUCache(maxsize=maxsize)
        # Identity keys found before -> their customer (keys are only ever added, never moved).
        self.keys: LRUCache[Key, str] = LRUCache(maxsize=maxsize)

    def get(self, system: str, customer_id: str) -> Any:
        key = (system, customer_id)
        value = self._cache.get(key, _MISSING)
        if value is not _MISSING:
            reads.note(self._cache, key, value)
        return value

    def put(self, system: str, customer_id: str, value: Any) -> None:
        key = (system, customer_id)
        self._cache[key] = value
        if key in self._cache:  # a TTL of (near) zero keeps nothing: an answer made of it is not kept
            reads.note(self._cache, key, value)
        else:
            reads.uncacheable()

    def invalidate(self, customer_ids: Iterable[str], systems: Iterable[str]) -> None:
        names = tuple(systems)
        for cid in customer_ids:
            for system in names:
                self._cache.pop((system, cid), None)

    def forget(self, customer_ids: Iterable[str]) -> None:
        """Erased customers (hub.core.privacy): every cached read of them, that they exist, and the
        keys that found them. Rare, so a scan of the caches is fine."""
        ids = set(customer_ids)
        if not ids:
            return
        for key in [k for k in list(self._cache.keys()) if k[1] in ids]:
            self._cache.pop(key, None)
        for cid in ids:
            self.known.pop(cid, None)
        for found in [k for k, cid in list(self.keys.items()) if cid in ids]:
            self.keys.pop(found, None)

    def clear(self) -> None:
        self._cache.clear()


class ViewAssembler:
    def __init__(
        self,
        engine: AsyncEngine,
        mapping: HubMapping,
        sources: Mapping[str, ProfileSource],
        cache: ProfileCache,
        translator: Translator,
        contacts: ContactService,
    ):
        self._engine = reading(engine)  # this module only reads
        self._mapping = mapping
        self._sources = dict(sources)
        self._cache = cache
        self._translator = translator
        self._contacts = contacts
        self._graph = IdentityGraph()

    async def existing(self, customer_ids: Sequence[str]) -> set[str]:
        ids = _plausible(customer_ids)
        if not ids:
            return set()
        async with self._engine.connect() as conn:
            return await _existing(conn, ids)

    async def load_many(self, customer_ids: Sequence[str]) -> list[CustomerView | None]:
        ids = _plausible(customer_ids)
        if not ids:
            reads.uncacheable()
            return [None for _ in customer_ids]
        # Known customers are remembered; unknown ids are asked every time.
        known = self._cache.known
        unsure = [c for c in ids if c not in known]
        if unsure:
            async with self._engine.connect() as conn:
                for cid in await _existing(conn, unsure):
                    known[cid] = True
        if any(c not in known for c in customer_ids):
            reads.uncacheable()  # an unknown id answers null: not kept (it may name someone later)
        ids = [c for c in ids if c in known]
        if not ids:
            return [None for _ in customer_ids]
        names = list(self._sources)
        per_system = await asyncio.gather(*(self._read(n, ids) for n in names), return_exceptions=True)
        fragments: dict[str, list[Fragment]] = {cid: [] for cid in ids}
        failed: dict[str, str] = {}
        for name, result in zip(names, per_system, strict=True):
            if isinstance(result, BaseException):
                failed[name] = why(result, self._mapping.systems[name].timeout_seconds)
                log.warning("profile source %s failed: %r", name, result)
                continue
            for cid, fragment in cast(dict[str, Fragment], result).items():
                fragments[cid].append(fragment)
        views = {cid: self._translator.merge(cid, fragments[cid], (), failed) for cid in ids}
        return [views.get(cid) for cid in customer_ids]

    async def contacts_of(self, customer_ids: Sequence[str]) -> list[list[Contact]]:
        """The hub's own recent contacts of these customers, newest first: read only when a query asks
        for them (the view's systems do not wait for it, nor it for them)."""
        ids = list(dict.fromkeys(customer_ids))
        found = await self._recent(ids)
        return [found.get(cid, []) for cid in customer_ids]

    async def _recent(self, ids: list[str]) -> dict[str, list[Contact]]:
        """The hub's own contacts of these customers, cached like a system's reads (a contact started
        or ended announces a change of the customer, which clears the entry)."""
        found: dict[str, list[Contact]] = {}
        missing = []
        for cid in ids:
            hit = self._cache.get(HUB_SYSTEM, cid)
            if hit is _MISSING:
                missing.append(cid)
            else:
                found[cid] = hit
        if missing:
            async with self._engine.connect() as conn:
                fetched = await self._contacts.recent(missing, conn)
            for cid in missing:
                found[cid] = fetched.get(cid, [])
                self._cache.put(HUB_SYSTEM, cid, found[cid])
        return found

    async def current(self, system: str, customer_ids: Sequence[str]) -> dict[str, CustomerView]:
        """What `system` says of these customers now, read past the cache (for a letter or an email
        sent days after it was planned: a changed address is used). Customers it does not know are
        left out; its failure is raised."""
        ids = list(dict.fromkeys(customer_ids))
        cfg = self._mapping.systems[system]
        if cfg.key == GOLDEN_ID:
            keys = {cid: cid for cid in ids}
        else:
            async with self._engine.connect() as conn:
                keys = await self._graph.keys_of(conn, cfg.key, ids)
        wanted = list(dict.fromkeys(keys.values()))
        fetch = bounded(self._sources[system].fetch(wanted), cfg.timeout_seconds) if wanted else None
        fetched = await system_call(system, "fetch", fetch, cfg.timeout_seconds) if fetch is not None else {}
        now = datetime.now(UTC)
        out: dict[str, CustomerView] = {}
        for cid, key in keys.items():
            record = fetched.get(key)
            if record is not None:
                out[cid] = self._translator.merge(cid, [self._translator.translate(system, record, now)])
        return out

    async def _read(self, system: str, ids: Sequence[str]) -> dict[str, Fragment]:
        """The system's fragments of these customers, from the cache or one batched fetch."""
        found: dict[str, Fragment] = {}
        missing: list[str] = []
        for cid in ids:
            hit = self._cache.get(system, cid)
            if hit is _MISSING:
                missing.append(cid)
            elif hit is not None:
                found[cid] = hit
        read_cache("profile", system, len(ids) - len(missing), len(missing))
        if not missing:
            return found
        cfg = self._mapping.systems[system]
        if cfg.key == GOLDEN_ID:  # the system shares the hub's ids: no look-up
            keys = {cid: cid for cid in missing}
        else:  # the hub's own store: not counted against the system's timeout
            async with self._engine.connect() as conn:
                keys = await self._graph.keys_of(conn, cfg.key, missing)
        wanted = list(dict.fromkeys(keys.values()))
        fetch = bounded(self._sources[system].fetch(wanted), cfg.timeout_seconds) if wanted else None
        fetched = await system_call(system, "fetch", fetch, cfg.timeout_seconds) if fetch is not None else {}
        now = datetime.now(UTC)
        for cid in missing:
            key = keys.get(cid)
            record = fetched.get(key) if key is not None else None
            fragment = self._translator.translate(system, record, now) if record is not None else None
            self._cache.put(system, cid, fragment)
            if fragment is not None:
                found[cid] = fragment
        return found


def _plausible(customer_ids: Sequence[str]) -> list[str]:
    return [c for c in dict.fromkeys(customer_ids) if 0 < len(c) <= 40]


_EXISTING = select(customers.c.id).where(any_of(customers.c.id, "ids"))


async def _existing(conn: AsyncConnection, ids: list[str]) -> set[str]:
    rows = await conn.execute(_EXISTING, {"ids": ids})
    return {r.id for r in rows}
