"""The audit log: who (key name, JWT subject, or the operating-system user of a CLI command), what
(the operation), on what (an id, never personal data), when, and the outcome.

Entries are buffered and written in one statement per `flush_seconds` (or per 200 entries), so a
mutation does not pay a second write; close() writes what is left."""

from __future__ import annotations

import contextlib
import getpass
import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.events import utcnow
from hub.store.tables import audit_log
from hub.waiting import Periodic

log = logging.getLogger(__name__)
MAX_BUFFER = 200
MAX_KEPT = 100_000


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: datetime
    who: str
    via: str  # key | jwt | open | cli
    action: str
    target: str | None
    outcome: str  # ok, or the error code


def cli_user() -> str:
    with contextlib.suppress(Exception):
        return getpass.getuser()
    return "unknown"


class AuditLog:
    def __init__(self, engine: AsyncEngine, flush_seconds: float = 0.5):
        self._engine = engine
        self._flush_seconds = flush_seconds
        self._buffer: list[AuditEntry] = []
        self._writer: Periodic | None = None

    def record(self, who: str, via: str, action: str, target: str | None, outcome: str) -> None:
        target = target[:200] if target else None
        entry = AuditEntry(utcnow(), who[:200], via[:10], action[:120], target, outcome[:60])
        self._buffer.append(entry)
        if self._writer is not None and len(self._buffer) >= MAX_BUFFER:
            self._writer.wake()

    async def start(self) -> None:
        self._writer = Periodic("audit-log", self._flush_seconds, self.flush)
        self._writer.start()

    async def close(self) -> None:
        if self._writer is not None:
            await self._writer.stop()
            self._writer = None
        await self.flush()

    async def flush(self) -> None:
        entries, self._buffer = self._buffer, []
        if not entries:
            return
        try:
            async with self._engine.begin() as tx:
                await tx.execute(
                    audit_log.insert(),
                    [
                        {"at": e.at, "who": e.who, "via": e.via, "action": e.action, "target": e.target,
                         "outcome": e.outcome}
                        for e in entries
                    ],
                )
        except Exception as exc:
            self._buffer[:0] = entries  # kept for the next round: the store may be back then
            if len(self._buffer) > MAX_KEPT:  # a long outage must not eat the memory: the oldest go
                log.error("audit log: store away too long, %d entries dropped", len(self._buffer) - MAX_KEPT)
                del self._buffer[: len(self._buffer) - MAX_KEPT]
            log.warning("audit log write failed (%d entries kept): %s", len(entries), type(exc).__name__)

    async def recent(
        self, limit: int = 50, action: str | None = None, who: str | None = None
    ) -> list[AuditEntry]:
        await self.flush()  # an operator sees everything recorded up to the question
        query = select(audit_log).order_by(audit_log.c.seq.desc()).limit(limit)
        if action:
            query = query.where(audit_log.c.action == action)
        if who:
            query = query.where(audit_log.c.who == who)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [AuditEntry(r.at, r.who, r.via, r.action, r.target, r.outcome) for r in rows]
