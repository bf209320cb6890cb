"""JWTs from the company's identity provider: signature by a key from its JWKS URL, issuer, audience,
expiry; scopes from a configured claim.

The JWKS is fetched with httpx (never blocking the loop), kept `jwks_cache_seconds`, and fetched again
when a token names a key id it does not hold (the provider rotated its keys), at most once per
`refetch_seconds` so that made-up key ids cannot make the hub hammer the provider. A verified token is
kept until it expires (verifying a signature is the expensive part).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

import httpx
import jwt
from cachetools import TTLCache

from hub.model import Channel
from hub.security.principal import Principal
from hub.security.scopes import ALL_SCOPES

log = logging.getLogger(__name__)


class InvalidToken(Exception):
    """The token is not one the hub accepts; the message is safe to show the caller."""


class JwtVerifier:
    def __init__(
        self,
        *,
        jwks_url: str,
        issuer: str,
        audience: str,
        algorithms: Sequence[str] = ("RS256", "ES256"),
        scopes_claim: str = "scope",
        channel_claim: str = "hub_channel",
        jwks_cache_seconds: float = 300.0,
        refetch_seconds: float = 10.0,
        leeway_seconds: float = 30.0,
    ):
        self._url = jwks_url
        self._issuer = issuer
        self._audience = audience
        self._algorithms = list(algorithms)
        self._scopes_claim = scopes_claim
        self._channel_claim = channel_claim
        self._jwks_ttl = jwks_cache_seconds
        self._refetch = refetch_seconds
        self._leeway = leeway_seconds
        self._keys: dict[str, Any] = {}
        self._fetched_at = float("-inf")
        self._fetch_lock = asyncio.Lock()
        self._verified: TTLCache[str, tuple[Principal, float]] = TTLCache(maxsize=10_000, ttl=300)
        self._http = httpx.AsyncClient(timeout=5.0)

    async def close(self) -> None:
        await self._http.aclose()

    def known(self, token: str) -> Principal | None:
        cached = self._verified.get(token)
        return cached[0] if cached is not None and cached[1] > time.time() else None

    async def authenticate(self, token: str) -> Principal:
        cached = self._verified.get(token)
        if cached is not None and cached[1] > time.time():
            return cached[0]
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("not a JWT the hub can read") from None
        kid = header.get("kid")
        if header.get("alg") not in self._algorithms:
            raise InvalidToken("the token's algorithm is not accepted")
        key = await self._key(kid if isinstance(kid, str) else None)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the token has expired") from None
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"the token is not valid ({type(exc).__name__})") from None
        principal = Principal(
            name=str(claims["sub"])[:200],
            kind="jwt",
            scopes=_scopes(claims.get(self._scopes_claim)),
            channel=_channel(claims.get(self._channel_claim)),
        )
        self._verified[token] = (principal, float(claims["exp"]))
        return principal

    async def _key(self, kid: str | None) -> Any:
        if time.monotonic() - self._fetched_at > self._jwks_ttl:
            await self._fetch(force=True)
        if (kid or "") not in self._keys:
            await self._fetch(force=False)  # rotated: the provider may have a key we have not seen
        if (kid or "") in self._keys:
            return self._keys[kid or ""]
        raise InvalidToken("the token is signed by a key the identity provider does not publish")

    async def _fetch(self, *, force: bool) -> None:
        async with self._fetch_lock:
            if not force and time.monotonic() - self._fetched_at < self._refetch:
                return
            self._fetched_at = time.monotonic()
            try:
                response = await self._http.get(self._url)
                response.raise_for_status()
                jwks = jwt.PyJWKSet.from_dict(response.json())
            except (httpx.HTTPError, ValueError, jwt.PyJWTError) as exc:
                # Keep the keys we had: a provider's blip must not log everyone out.
                log.warning("JWKS fetch from the identity provider failed: %s", type(exc).__name__)
                return
            # A JWKS of keys without ids serves tokens without a kid (the first key).
            self._keys = {(k.key_id or ""): k.key for k in jwks.keys}


def _scopes(claim: object) -> frozenset[str]:
    """`scope: "a b"` (OAuth 2) or `scp: ["a", "b"]`; scopes the hub does not know are ignored."""
    if isinstance(claim, str):
        given = claim.split()
    elif isinstance(claim, list):
        given = [s for s in claim if isinstance(s, str)]
    else:
        given = []
    return frozenset(given) & ALL_SCOPES


def _channel(claim: object) -> Channel | None:
    """The channel the token is bound to; a claim naming no channel refuses the token (an unbound token
    could act as every channel)."""
    if claim is None:
        return None
    try:
        return Channel(str(claim).upper())
    except ValueError:
        raise InvalidToken("the token's channel claim names no channel") from None
