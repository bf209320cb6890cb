"""The caller behind a request, once authenticated: who (for audit and history), what it may do."""

from __future__ import annotations

from dataclasses import dataclass

from hub.model import Channel
from hub.security.scopes import ALL_SCOPES


@dataclass(frozen=True, slots=True)
class Principal:
    name: str  # key name or JWT subject: who, in the audit log and in request histories
    kind: str  # "key", "jwt" or "open" (HUB_AUTH=off)
    scopes: frozenset[str]
    # A key bound to a channel acts only as that channel (a WEBSITE key cannot start a CALLCENTER contact).
    channel: Channel | None = None

    def allows(self, scope: str) -> bool:
        return scope in self.scopes


# HUB_AUTH=off: every caller may do everything (the newcomer's demo); the hub warns on every start.
OPEN = Principal("anonymous", "open", ALL_SCOPES)

# Not authenticated (yet): a websocket before its connection_init. May do nothing.
NOBODY = Principal("nobody", "none", frozenset())
