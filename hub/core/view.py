"""The unified customer view: one batched fetch per profile source, concurrently, through a TTL cache,
translated by each system's mapping and merged by survivorship. A system that fails or times out
gives partial data; its latency is bounded by its timeout."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from cachetools import TTLCache
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.config.mapping import HubMapping
from hub.core.calls import why
from hub.core.contacts import ContactService
from hub.core.identity import IdentityGraph
from hub.core.translate import Fragment, Translator
from hub.model import CustomerView
from hub.ports import ProfileSource, Record
from hub.store.tables import customers

log = logging.getLogger(__name__)

_MISSING = object()
Entry = tuple[Record | None, datetime]  # a system's record (None: it does not know the customer), read at


class ProfileCache:
    """Adapter reads keyed per (system, customer); events that change a customer clear its entries."""

    def __init__(self, ttl: float, maxsize: int):
        self._cache: TTLCache[tuple[str, str], Entry] = TTLCache(maxsize=maxsize, ttl=ttl)

    def get(self, system: str, customer_id: str) -> Any:
        return self._cache.get((system, customer_id), _MISSING)

    def put(self, system: str, customer_id: str, record: Record | None, fetched_at: datetime) -> None:
        self._cache[(system, customer_id)] = (record, fetched_at)

    def invalidate(self, customer_ids: Iterable[str], systems: Iterable[str]) -> None:
        names = tuple(systems)
        for cid in customer_ids:
            for system in names:
                self._cache.pop((system, cid), None)

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
        self._engine = engine
        self._mapping = mapping
        self._sources = dict(sources)
        self._cache = cache
        self._translator = translator
        self._contacts = contacts
        self._graph = IdentityGraph()

    async def existing(self, customer_ids: Sequence[str]) -> set[str]:
        ids = [c for c in dict.fromkeys(customer_ids) if 0 < len(c) <= 40]
        if not ids:
            return set()
        async with self._engine.connect() as conn:
            rows = await conn.execute(select(customers.c.id).where(customers.c.id.in_(ids)))
            return {r.id for r in rows}

    async def load_many(self, customer_ids: Sequence[str]) -> list[CustomerView | None]:
        known = await self.existing(customer_ids)
        ids = [c for c in dict.fromkeys(customer_ids) if c in known]
        if not ids:
            return [None for _ in customer_ids]
        names = list(self._sources)
        recent_task = asyncio.ensure_future(self._contacts.recent(ids))
        per_system = await asyncio.gather(*(self._read(n, ids) for n in names), return_exceptions=True)
        recent = await recent_task
        fragments: dict[str, list[Fragment]] = {cid: [] for cid in ids}
        failed: dict[str, str] = {}
        for name, result in zip(names, per_system, strict=True):
            if isinstance(result, BaseException):
                failed[name] = why(result, self._mapping.systems[name].timeout_seconds)
                log.warning("profile source %s failed: %r", name, result)
                continue
            for cid, (record, fetched_at) in result.items():
                fragments[cid].append(self._translator.translate(name, record, fetched_at))
        views = {cid: self._translator.merge(cid, fragments[cid], recent.get(cid, ()), failed) for cid in ids}
        return [views.get(cid) for cid in customer_ids]

    async def _read(self, system: str, ids: Sequence[str]) -> dict[str, tuple[Record, datetime]]:
        """The system's records for these customers, from the cache or one batched fetch."""
        found: dict[str, tuple[Record, datetime]] = {}
        missing: list[str] = []
        for cid in ids:
            hit = self._cache.get(system, cid)
            if hit is _MISSING:
                missing.append(cid)
            elif hit[0] is not None:
                found[cid] = hit
        if not missing:
            return found
        cfg = self._mapping.systems[system]
        async with asyncio.timeout(cfg.timeout_seconds):
            async with self._engine.connect() as conn:
                keys = await self._graph.keys_of(conn, cfg.key, missing)
            fetched = await self._sources[system].fetch(list(dict.fromkeys(keys.values()))) if keys else {}
        now = datetime.now(UTC)
        for cid in missing:
            key = keys.get(cid)
            record = fetched.get(key) if key is not None else None
            self._cache.put(system, cid, record, now)
            if record is not None:
                found[cid] = (record, now)
        return found
