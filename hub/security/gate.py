"""The hub's security parts, started and closed with it: who calls (Authenticator), how often
(RateLimiter), how many sockets and subscriptions they hold, and what they did (AuditLog)."""

from __future__ import annotations

from collections import Counter

from sqlalchemy.ext.asyncio import AsyncEngine

from hub.config import Settings
from hub.security.audit import AuditLog
from hub.security.authn import Authenticator
from hub.security.principal import Principal
from hub.security.ratelimit import RateLimiter


class Security:
    def __init__(self, settings: Settings, engine: AsyncEngine, process_id: str):
        self.authn = Authenticator(settings, engine)
        self.limiter = RateLimiter(settings.rate_limit, engine, process_id)
        self.audit = AuditLog(engine)
        self.max_connections = settings.max_ws_connections_per_credential
        self.max_subscriptions = settings.max_subscriptions_per_credential
        self.connections: Counter[str] = Counter()
        self.subscriptions: Counter[str] = Counter()

    async def start(self) -> None:
        await self.authn.start()
        await self.limiter.start()
        await self.audit.start()

    async def close(self) -> None:
        await self.audit.close()
        await self.limiter.close()
        await self.authn.close()


def credential(principal: Principal, client: str | None = None) -> str:
    """What limits count by: the key or token subject; callers of an open hub by their address."""
    if principal.kind == "open":
        return f"open:{client or '-'}"
    return f"{principal.kind}:{principal.name}"
