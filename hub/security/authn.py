"""Authentication: a bearer token -> the caller (Principal). API keys (`mkh_…`) are the hub's own; any
other token is taken for a JWT of the configured identity provider."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from hub.config import Settings
from hub.core.errors import Unauthenticated
from hub.security.idp import InvalidToken, JwtVerifier
from hub.security.keys import KeyRing, is_api_key
from hub.security.principal import OPEN, Principal

MAX_TOKEN = 8192  # longer than any key or sane JWT: refused before any work


class Authenticator:
    def __init__(self, settings: Settings, engine: AsyncEngine):
        self.required = settings.auth_required
        self.keys = KeyRing(engine, settings.auth_refresh_seconds)
        self.jwt: JwtVerifier | None = None
        if settings.jwt_jwks_url:
            self.jwt = JwtVerifier(
                jwks_url=settings.jwt_jwks_url,
                issuer=settings.jwt_issuer,
                audience=settings.jwt_audience,
                algorithms=[a.strip() for a in settings.jwt_algorithms.split(",") if a.strip()],
                scopes_claim=settings.jwt_scopes_claim,
                channel_claim=settings.jwt_channel_claim,
                jwks_cache_seconds=settings.jwt_jwks_cache_seconds,
            )

    async def start(self) -> None:
        await self.keys.start()

    async def close(self) -> None:
        await self.keys.close()
        if self.jwt is not None:
            await self.jwt.close()

    def known(self, authorization: str | None) -> Principal | None:
        """The caller when this process has verified the credential before (no I/O), else None."""
        if not self.required:
            return OPEN
        try:
            token = bearer(authorization)
        except Unauthenticated:
            return None
        if is_api_key(token):
            return self.keys.known(token)
        return self.jwt.known(token) if self.jwt is not None else None

    def verified_before(self, authorization: str | None) -> bool:
        """An API key this process verified before, perhaps not in its cache any more (no I/O)."""
        try:
            token = bearer(authorization)
        except Unauthenticated:
            return False
        return is_api_key(token) and self.keys.verified_before(token)

    async def principal(self, authorization: str | None) -> Principal:
        """The caller of a request with this Authorization value (raises Unauthenticated)."""
        if not self.required:
            return OPEN
        token = bearer(authorization)
        if is_api_key(token):
            found = await self.keys.authenticate(token)
            if found is None:
                raise Unauthenticated("the API key is not valid (unknown or revoked)")
            return found
        if self.jwt is None:
            raise Unauthenticated("not an API key, and no identity provider is configured for JWTs")
        try:
            return await self.jwt.authenticate(token)
        except InvalidToken as exc:
            raise Unauthenticated(str(exc)) from None


def bearer(authorization: str | None) -> str:
    if not authorization:
        raise Unauthenticated("a credential is required: send 'Authorization: Bearer <token>'")
    if len(authorization) > MAX_TOKEN:
        raise Unauthenticated("the credential is too long")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("the Authorization header must read 'Bearer <token>'")
    return token.strip()
