"""How a browser signs in to /ops: the operator pastes an API key (or a JWT) at /ops/login; the hub
checks it through hub.security and keeps it in a cookie (HttpOnly, SameSite=Strict, Secure on https,
path /ops). Every request checks it again through hub.security, so a revoked key is signed out at once.
POSTs are held against CSRF three ways: SameSite=Strict, the Origin header must be this host, and a token
derived from the credential must come with the form. Failed sign-ins count against the caller's address
in the hub's rate limit. With HUB_AUTH=off the page is open (the demo)."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit

from starlette.requests import Request

from hub.core.errors import Unauthenticated
from hub.runtime import Hub
from hub.security.principal import OPEN, Principal

COOKIE = "hub_ops"
COOKIE_PATH = "/ops"
MAX_CREDENTIAL = 4096
OPEN_CSRF = "open"  # HUB_AUTH=off: no credential to derive a token from (the Origin check still holds)


class SignedOut(Exception):
    """No credential, or one the hub no longer accepts (revoked, expired)."""

    def __init__(self, reason: str, had_cookie: bool):
        super().__init__(reason)
        self.reason = reason
        self.had_cookie = had_cookie


class Throttled(Exception):
    def __init__(self, wait: float):
        super().__init__(f"retry in {wait:.0f}s")
        self.wait = wait


def address(request: Request) -> str:
    return request.client.host if request.client else "-"


async def check_credential(hub: Hub, credential: str, request: Request) -> Principal:
    """The caller this credential names (raises Unauthenticated; failures count in the rate limit)."""
    security = hub.security
    authorization = f"Bearer {credential}"
    known = security.authn.known(authorization)
    if known is not None:
        return known
    failed = f"failed:{address(request)}"
    wait = security.limiter.exhausted(failed)
    if wait is not None:
        raise Throttled(wait)
    try:
        return await security.authn.principal(authorization)
    except Unauthenticated:
        security.limiter.take(failed)
        raise


async def operator(hub: Hub, request: Request) -> Principal:
    """Who is signed in (OPEN when authentication is off); SignedOut otherwise."""
    if not hub.settings.auth_required:
        return OPEN
    credential = request.cookies.get(COOKIE)
    if not credential:
        raise SignedOut("sign in with an API key", had_cookie=False)
    if len(credential) > MAX_CREDENTIAL:
        raise SignedOut("the credential is too long", had_cookie=True)
    try:
        return await check_credential(hub, credential, request)
    except Unauthenticated:
        raise SignedOut("your key is no longer accepted (revoked or unknown): signed out", had_cookie=True) \
            from None


def csrf_token(request: Request) -> str:
    """A token only a page that could read the (HttpOnly) credential can know: a hash of it."""
    credential = request.cookies.get(COOKIE) or OPEN_CSRF
    return hashlib.sha256(f"hub-ops-csrf:{credential}".encode()).hexdigest()[:40]


def same_origin(request: Request) -> bool:
    """The POST came from a page of this host: its Origin (or, without one, its Referer) names it."""
    given = request.headers.get("origin") or request.headers.get("referer")
    if not given or given == "null":
        return False
    return urlsplit(given).netloc.lower() == (request.headers.get("host") or "").lower()


def csrf_ok(request: Request, token: str | None) -> bool:
    return same_origin(request) and token is not None and hmac.compare_digest(token, csrf_token(request))


def cookie_options(request: Request) -> dict[str, object]:
    return {
        "httponly": True,
        "samesite": "strict",
        "secure": request.url.scheme == "https",
        "path": COOKIE_PATH,
    }
