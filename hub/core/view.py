"""The unified customer view: one batched fetch per system, through a TTL cache, merged by survivorship."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from cachetools import TTLCache
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.core.model import Contact, CustomerView, OfferHistory, Segment
from hub.mapping.models import HubMapping
from hub.ports import Profile, ProfileSource
from hub.store.tables import customers

log = logging.getLogger(__name__)

_MISSING = object()


class ProfileCache:
    """Adapter reads keyed per (system, customer); events that change a customer clear its entries."""

    def __init__(self, ttl: float, maxsize: int):
        self._cache: TTLCache[tuple[str, str], Profile | None] = TTLCache(maxsize=maxsize, ttl=ttl)

    def get(self, system: str, customer_id: str) -> Any:
        return self._cache.get((system, customer_id), _MISSING)

    def put(self, system: str, customer_id: str, profile: Profile | None) -> None:
        self._cache[(system, customer_id)] = profile

    def invalidate(self, customer_ids: Iterable[str], systems: Iterable[str]) -> None:
        names = tuple(systems)
        for cid in customer_ids:
            for system in names:
                self._cache.pop((system, cid), None)


class ViewAssembler:
    def __init__(
        self, engine: AsyncEngine, mapping: HubMapping, sources: dict[str, ProfileSource], cache: ProfileCache
    ):
        self._engine = engine
        self._mapping = mapping
        self._sources = sources
        self._cache = cache

    async def existing(self, customer_ids: Sequence[str]) -> set[str]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(select(customers.c.id).where(customers.c.id.in_(list(customer_ids))))
            return {r.id for r in rows}

    async def load_many(self, customer_ids: Sequence[str]) -> list[CustomerView | None]:
        known = await self.existing(customer_ids)
        ids = [c for c in dict.fromkeys(customer_ids) if c in known]
        names = list(self._sources)
        results = await asyncio.gather(*(self._fetch(n, ids) for n in names), return_exceptions=True)
        per_system: dict[str, dict[str, Profile]] = {}
        failed: dict[str, str] = {}
        for name, result in zip(names, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("profile source %s failed: %r", name, result)
                failed[name] = f"{type(result).__name__}: {result}"
                per_system[name] = {}
            else:
                per_system[name] = result
        views = {cid: self._merge(cid, per_system, failed) for cid in ids}
        return [views.get(cid) for cid in customer_ids]

    async def _fetch(self, system: str, ids: Sequence[str]) -> dict[str, Profile]:
        found: dict[str, Profile] = {}
        missing: list[str] = []
        for cid in ids:
            hit = self._cache.get(system, cid)
            if hit is _MISSING:
                missing.append(cid)
            elif hit is not None:
                found[cid] = hit
        if missing:
            fetched = await self._sources[system].fetch(missing)
            for cid in missing:
                profile = fetched.get(cid)
                self._cache.put(system, cid, profile)
                if profile is not None:
                    found[cid] = profile
        return found

    def _merge(
        self, cid: str, per_system: dict[str, dict[str, Profile]], failed: dict[str, str]
    ) -> CustomerView:
        """Each unified field comes from the first system, in survivorship order, that has a value."""
        values: dict[str, Any] = {}
        for system, cfg in self._mapping.systems.items():
            profile = per_system.get(system, {}).get(cid)
            if profile is None:
                continue
            for unified, field in cfg.profile.items():
                value = profile.get(field)
                if value in (None, [], {}, ""):
                    continue
                order = self._mapping.survivorship.get(unified)
                rank = order.index(system) if order and system in order else len(order or ())
                if unified not in values or rank < values[unified][0]:
                    values[unified] = (rank, value)
        v = {k: val for k, (_, val) in values.items()}
        return CustomerView(
            id=cid,
            name=v.get("name"),
            emails=list(v.get("emails", [])),
            phones=list(v.get("phones", [])),
            segments=[Segment(s["id"], s["name"]) for s in v.get("segments", [])],
            offer_history=[_history(h) for h in v.get("offerHistory", [])],
            contacts=[c for c in v.get("contacts", []) if isinstance(c, Contact)],
            attributes=dict(v.get("attributes", {})),
            unavailable=dict(failed),
        )


def _history(h: dict[str, Any]) -> OfferHistory:
    return OfferHistory(
        offer_id=h["offerId"],
        shown=h["shown"],
        accepted=h["accepted"],
        rejected=h["rejected"],
        later=h["later"],
        last_shown_at=h.get("lastShownAt"),
    )
