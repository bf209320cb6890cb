"""API keys for channel and system callers: created once (the secret is shown once and stored as a hash),
listed without secrets, revoked at once in every hub process.

A key reads `mkh_<id>_<secret>`: the id finds the row, the secret is compared with its SHA-256 (a
random 192-bit secret needs no slow hash: there is nothing to guess from). Verified keys are kept in
memory; every process drops them all when the key table changes (a revocation or a new key): on
PostgreSQL at once (LISTEN/NOTIFY, sent in the revoking transaction), and on any store by a poll of the
table's counts every `refresh_seconds`.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cachetools import LRUCache
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.events import utcnow
from hub.model import Channel
from hub.security.principal import Principal
from hub.security.scopes import parse_scopes
from hub.store.tables import api_keys
from hub.waiting import Periodic

log = logging.getLogger(__name__)

PREFIX = "mkh_"
CHANNEL_NOTIFY = "hub_api_keys"  # PostgreSQL NOTIFY channel: a key changed
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")
_TOKEN = re.compile(r"^mkh_([0-9a-f]{12})_([A-Za-z0-9_-]{20,64})$")


class KeyCommandError(ValueError):
    """A key command that cannot be done (a taken or malformed name, an unknown scope or channel)."""


@dataclass(frozen=True, slots=True)
class KeyInfo:
    name: str
    scopes: frozenset[str]
    channel: Channel | None
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class _Entry:
    secret_hash: str
    principal: Principal


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def is_api_key(token: str) -> bool:
    return token.startswith(PREFIX)


class KeyRing:
    def __init__(self, engine: AsyncEngine, refresh_seconds: float = 0.5, cache_entries: int = 10_000):
        self._engine = engine
        self._refresh = refresh_seconds
        # key id -> entry, or None for an id that has no live key (bounded: ids are the caller's input).
        self._cache: LRUCache[str, _Entry | None] = LRUCache(maxsize=cache_entries)
        # Key id -> the secret's hash, for every key this process verified; kept when the cache above is
        # dropped (a key made or revoked anywhere), so that a caller's own key is still told apart from
        # others' guesses at the same address (hub.api.auth) until it is verified again.
        self._verified: LRUCache[str, str] = LRUCache(maxsize=cache_entries)
        self._seen: tuple[int, int] | None = None
        # Bumped at every drop: a read that began before a drop is not kept (it may be a revoked key).
        self._generation = 0
        self._poller: Periodic | None = None
        self._listener: Any = None

    # --- commands (hub keys …) -------------------------------------------------------------------

    async def create(self, name: str, scopes: str, channel: str | None = None) -> str:
        """A new key; returns the token, which exists nowhere else: show it once."""
        if not _NAME.match(name):
            raise KeyCommandError(
                "a key name is 1-80 letters, digits, '.', '_' or '-', starting with a letter or digit"
            )
        try:
            granted = parse_scopes(scopes)
        except ValueError as exc:
            raise KeyCommandError(str(exc)) from None
        if not granted:
            raise KeyCommandError("give at least one scope (--scopes)")
        bound = None
        if channel:
            try:
                bound = Channel(channel.upper())
            except ValueError:
                raise KeyCommandError(
                    f"unknown channel {channel[:40]!r}; one of {', '.join(c.value for c in Channel)}"
                ) from None
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(24)
        try:
            async with self._engine.begin() as tx:
                await tx.execute(
                    api_keys.insert().values(
                        name=name,
                        key_id=key_id,
                        secret_hash=_hash(secret),
                        scopes=" ".join(sorted(granted)),
                        channel=bound.value if bound else None,
                        created_at=utcnow(),
                    )
                )
                await self._notify(tx)
        except IntegrityError:
            raise KeyCommandError(
                f"a key named {name!r} exists (names are never reused, also after revoking)"
            ) from None
        return f"{PREFIX}{key_id}_{secret}"

    async def list(self) -> list[KeyInfo]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(select(api_keys).order_by(api_keys.c.created_at, api_keys.c.name))
            return [
                KeyInfo(
                    name=r.name,
                    scopes=frozenset(r.scopes.split()),
                    channel=Channel(r.channel) if r.channel else None,
                    created_at=r.created_at,
                    revoked_at=r.revoked_at,
                )
                for r in rows
            ]

    async def revoke(self, name: str) -> bool:
        """True when a live key of that name was revoked now."""
        async with self._engine.begin() as tx:
            result = await tx.execute(
                update(api_keys)
                .where(api_keys.c.name == name, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
            if result.rowcount:
                await self._notify(tx)
        self._drop()
        return bool(result.rowcount)

    async def _notify(self, tx: Any) -> None:
        if self._engine.dialect.name == "postgresql":
            await tx.exec_driver_sql(f"NOTIFY {CHANNEL_NOTIFY}")

    # --- the request path --------------------------------------------------------------------------

    def known(self, token: str) -> Principal | None:
        """The key's principal when this process has verified it before (no I/O), else None."""
        match = _TOKEN.match(token)
        if match is None:
            return None
        entry = self._cache.get(match.group(1))
        if entry is None or not hmac.compare_digest(entry.secret_hash, _hash(match.group(2))):
            return None
        return entry.principal

    async def authenticate(self, token: str) -> Principal | None:
        """The key's principal, or None for a token that is not a live key."""
        match = _TOKEN.match(token)
        if match is None:
            return None
        key_id, secret = match.groups()
        if key_id in self._cache:
            entry = self._cache[key_id]
        else:
            generation = self._generation
            entry = await self._load(key_id)
            if generation == self._generation:
                self._cache[key_id] = entry
        if entry is None or not hmac.compare_digest(entry.secret_hash, _hash(secret)):
            return None
        self._verified[key_id] = entry.secret_hash
        return entry.principal

    def verified_before(self, token: str) -> bool:
        """This process verified this very key before (it may have been revoked since: verify again)."""
        match = _TOKEN.match(token)
        if match is None:
            return False
        seen = self._verified.get(match.group(1))
        return seen is not None and hmac.compare_digest(seen, _hash(match.group(2)))

    async def _load(self, key_id: str) -> _Entry | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(api_keys).where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
                )
            ).first()
        if row is None:
            return None
        principal = Principal(
            name=row.name,
            kind="key",
            scopes=frozenset(row.scopes.split()),
            channel=Channel(row.channel) if row.channel else None,
        )
        return _Entry(row.secret_hash, principal)

    # --- keeping every process's cache true ----------------------------------------------------------

    async def start(self) -> None:
        await self.refresh()
        self._poller = Periodic("api-key-refresh", self._refresh, self._poll)
        self._poller.start()

    async def close(self) -> None:
        if self._poller is not None:
            await self._poller.stop()
            self._poller = None
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()
            self._listener = None

    async def refresh(self) -> None:
        """Drop the cache when a key was created or revoked since the last look (by any process)."""
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(func.count(), func.count(api_keys.c.revoked_at)).select_from(api_keys)
                )
            ).one()
        seen = (int(row[0]), int(row[1]))
        if seen != self._seen:
            self._drop()
            self._seen = seen

    def _drop(self) -> None:
        self._generation += 1
        self._cache.clear()

    async def _poll(self) -> None:
        if self._engine.dialect.name == "postgresql" and self._listener is None:
            await self._listen()
        await self.refresh()

    async def _listen(self) -> None:
        """A connection of its own that hears NOTIFY hub_api_keys (the pool's are shared and recycled)."""
        import asyncpg

        url = self._engine.url.set(drivername="postgresql")
        try:
            conn = await asyncpg.connect(url.render_as_string(hide_password=False))
        except Exception as exc:
            log.warning("api key listener not connected (%s): polling only", type(exc).__name__)
            return

        def changed(*_: object) -> None:
            self._drop()

        def lost(*_: object) -> None:
            self._listener = None
            self._drop()

        await conn.add_listener(CHANNEL_NOTIFY, changed)
        conn.add_termination_listener(lost)
        self._listener = conn
