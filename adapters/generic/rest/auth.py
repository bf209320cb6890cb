"""Credentials: the headers that authenticate a request, per auth kind.

Headers are built per request from the `SecretStr`s and never set on the shared HTTP client, whose
default headers would show in its repr. `secrets()` lists every value to scrub from text that comes
back from the system (an echoed header in an error body, say) before it reaches a log or an error.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
from collections.abc import Iterable
from typing import Any

import httpx

from hub.ports import SecretStr

from .config import ApiKeyAuth, Auth, BasicAuth, BearerAuth, OAuth2Auth
from .resilience import Deadline

log = logging.getLogger(__name__)

OAUTH_ERROR = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")  # RFC 6749 error codes are ASCII words
REDACTED = "***"


class AuthFailed(Exception):
    """The credentials could not be obtained (the token endpoint refused or failed). The message is
    safe to show: it names no secret and no URL."""


class Credentials:
    """Static credentials (none, bearer, API key, Basic): the same headers every time."""

    refreshable = False

    def __init__(self, headers: dict[str, SecretStr] | None = None):
        self._headers = dict(headers or {})

    async def headers(self, deadline: Deadline) -> dict[str, str]:
        return {name: value.get_secret_value() for name, value in self._headers.items()}

    def invalidate(self, used: dict[str, str]) -> None:
        """The system answered 401 to these headers (nothing to renew for static credentials)."""

    def secrets(self) -> Iterable[str]:
        return [v.get_secret_value() for v in self._headers.values()]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(self._headers) or 'none'})"


class OAuth2ClientCredentials(Credentials):
    """A bearer token from the token endpoint: cached until `refresh_before_seconds` before it expires;
    one fetch at a time however many requests wait for it; dropped and fetched again after a 401."""

    refreshable = True

    def __init__(self, config: OAuth2Auth, client: httpx.AsyncClient):
        super().__init__()
        self._config = config
        self._client = client
        self._token: SecretStr | None = None
        self._expires_at: float | None = None  # loop time; None: until the API answers 401
        self._lock = asyncio.Lock()
        self._issued: list[SecretStr] = []  # every token seen, to scrub from text (a few per hour)
        self.fetches = 0

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _valid(self) -> bool:
        return self._token is not None and (self._expires_at is None or self._now() < self._expires_at)

    async def headers(self, deadline: Deadline) -> dict[str, str]:
        if not self._valid():
            async with self._lock:
                if not self._valid():  # another request may have fetched it while this one waited
                    await self._fetch(deadline)
        assert self._token is not None
        return {"Authorization": f"Bearer {self._token.get_secret_value()}"}

    def invalidate(self, used: dict[str, str]) -> None:
        # Only the token that was refused: when several requests get 401 for one token, the first
        # drops it and the others reuse the one fetched in its place.
        if (
            self._token is not None
            and used.get("Authorization") == f"Bearer {self._token.get_secret_value()}"
        ):
            self._token = None

    def secrets(self) -> Iterable[str]:
        yield self._config.client_secret.get_secret_value()
        for token in self._issued:
            yield token.get_secret_value()

    def __repr__(self) -> str:
        return f"OAuth2ClientCredentials(client_id={self._config.client_id!r})"

    async def _fetch(self, deadline: Deadline) -> None:
        c = self._config
        form = {"grant_type": "client_credentials", **c.params}
        if c.scope:
            form["scope"] = c.scope
        extra: dict[str, Any] = {}
        if c.client_auth == "basic":
            extra["auth"] = httpx.BasicAuth(c.client_id, c.client_secret.get_secret_value())
        else:
            form |= {"client_id": c.client_id, "client_secret": c.client_secret.get_secret_value()}
        self.fetches += 1
        started = self._now()
        try:
            async with asyncio.timeout(deadline.remaining()):
                response = await self._client.post(
                    c.token_url, data=form, headers={"Accept": "application/json"}, **extra
                )
        except TimeoutError:
            raise AuthFailed(f"OAuth2 token request: no answer within {deadline.seconds:g}s") from None
        except httpx.HTTPError as exc:
            # The exception's text may hold the token URL; its kind says enough.
            raise AuthFailed(f"OAuth2 token request failed ({type(exc).__name__})") from None
        if response.status_code != 200:
            raise AuthFailed(
                f"OAuth2 token request refused (HTTP {response.status_code}{_oauth_error(response)})"
            )
        try:
            body = response.json()
            token = body["access_token"]
            token_type = str(body.get("token_type", "bearer"))
            expires_in = body.get("expires_in")
        except (ValueError, TypeError, KeyError):
            raise AuthFailed("OAuth2 token answer has no access_token") from None
        if not isinstance(token, str) or not token:
            raise AuthFailed("OAuth2 token answer has no access_token")
        if token_type.lower() != "bearer":
            raise AuthFailed(f"OAuth2 token type {token_type[:20]!r} is not supported (only bearer)")
        self._token = SecretStr(token)
        self._issued = [*self._issued[-9:], self._token]
        if isinstance(expires_in, (int, float)) and not isinstance(expires_in, bool) and expires_in > 0:
            # Renew early, but never so early that a short-lived token is renewed on every request.
            margin = min(c.refresh_before_seconds, expires_in / 2)
            self._expires_at = started + expires_in - margin
        else:
            self._expires_at = None
        log.debug("OAuth2 token for %s obtained (expires in %s s)", c.client_id, expires_in)


def _oauth_error(response: httpx.Response) -> str:
    """The RFC 6749 error code of a refused token request (e.g. invalid_client), when it is one."""
    try:
        code = response.json().get("error")
    except (ValueError, AttributeError):
        return ""
    return f": {code}" if isinstance(code, str) and OAUTH_ERROR.match(code) else ""


def credentials_for(auth: Auth, client: httpx.AsyncClient) -> Credentials:
    if isinstance(auth, BearerAuth):
        return Credentials({"Authorization": SecretStr(f"Bearer {auth.token.get_secret_value()}")})
    if isinstance(auth, ApiKeyAuth):
        return Credentials({auth.header: auth.key})
    if isinstance(auth, BasicAuth):
        pair = f"{auth.username}:{auth.password.get_secret_value()}".encode()
        return Credentials({"Authorization": SecretStr(f"Basic {base64.b64encode(pair).decode('ascii')}")})
    if isinstance(auth, OAuth2Auth):
        return OAuth2ClientCredentials(auth, client)
    return Credentials()


def secrets_of(auth: Auth) -> list[str]:
    """The configured secret values (without the derived header forms), for scrubbing text."""
    found: list[str] = []
    for name in ("token", "key", "password", "client_secret"):
        value = getattr(auth, name, None)
        if isinstance(value, SecretStr):
            found.append(value.get_secret_value())
    return found


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret replaced by ***; the longest first, so a secret inside another one is
    not half-replaced."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text
