"""JWTs from the company's identity provider, served by a real JWKS endpoint the test runs: signature,
issuer, audience and expiry checked; scopes and channel from the configured claims; rotated keys found
by refetching the JWKS."""

from __future__ import annotations

import json
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.support import codes, gql, serving

ISSUER = "https://idp.example.test/"
AUDIENCE = "markiting-hub"


class Provider:
    """An identity provider: signing keys by kid, the JWKS it publishes, and how often it was asked."""

    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.fetches = 0
        self.rotate()

    def rotate(self) -> str:
        kid = uuid.uuid4().hex[:8]
        self.keys = {kid: rsa.generate_private_key(public_exponent=65537, key_size=2048)}
        return kid

    def jwks(self) -> dict:
        return {"keys": [{**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(k.public_key())), "kid": kid,
                          "use": "sig", "alg": "RS256"} for kid, k in self.keys.items()]}

    def token(self, *, scope="customer:read", exp_in=300, aud=AUDIENCE, iss=ISSUER, key=None, kid=None,
              **claims) -> str:
        kid = kid or next(iter(self.keys))
        key = key or self.keys[kid]
        body = {"sub": "agent-7", "iss": iss, "aud": aud, "exp": int(time.time()) + exp_in, "scope": scope,
                **claims}
        return jwt.encode(body, key, algorithm="RS256", headers={"kid": kid})


@pytest.fixture
async def provider():
    idp = Provider()

    async def jwks(_):
        idp.fetches += 1
        return JSONResponse(idp.jwks())

    async with serving(Starlette(routes=[Route("/jwks", jwks)])) as address:
        idp.url = f"http://{address}/jwks"
        yield idp


@pytest.fixture
def hub_settings(database_url, broker_url, bus_namespace, provider):
    from hub.config import Settings

    return Settings(
        database_url=database_url, broker_url=broker_url, bus_namespace=bus_namespace, auth="required",
        jwt_jwks_url=provider.url, jwt_issuer=ISSUER, jwt_audience=AUDIENCE,
    )


async def ask(caller, token: str, query: str = "{ offers { id } }"):
    async with caller(token) as client:
        response = await client.post("/graphql", json={"query": query})
    return response.status_code, response.json()


async def test_a_valid_token_is_a_caller_with_its_scopes(provider, caller, hub):
    status, body = await ask(caller, provider.token(scope="customer:read"))
    assert status == 200 and body["data"]["offers"], body
    status, body = await ask(caller, provider.token(scope="customer:read"), "{ flows { name } }")
    assert codes(body) == ["FORBIDDEN"]
    status, body = await ask(caller, provider.token(scp=["operations:read"], scope=None), "{ flows { name } }")
    assert codes(body) == ["FORBIDDEN"]  # scopes come from the configured claim only


async def test_the_subject_is_who_in_the_audit_log(provider, caller, hub):
    token = provider.token(scope="contact:write customer:read operations:read", sub="agent-42")
    async with caller(token) as client:
        await gql(client, 'mutation { startContact(input: {channel: CALLCENTER, identification: '
                          '{cookieId: "jwt-c"}}) { contact { id } } }')
        log = await gql(client, "{ auditLog(limit: 5) { who via action } }")
    assert {"who": "agent-42", "via": "jwt", "action": "Mutation.startContact"} in log["auditLog"]


@pytest.mark.parametrize("bad", ["expired", "audience", "issuer", "signature", "channel", "alg-none"])
async def test_tokens_that_do_not_hold_are_refused(provider, caller, bad):
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = {
        "expired": lambda: provider.token(exp_in=-3600),
        "audience": lambda: provider.token(aud="another-api"),
        "issuer": lambda: provider.token(iss="https://evil.example/"),
        "signature": lambda: provider.token(key=stranger),
        "channel": lambda: provider.token(hub_channel="NOT-A-CHANNEL"),
        "alg-none": lambda: jwt.encode({"sub": "x", "iss": ISSUER, "aud": AUDIENCE,
                                        "exp": int(time.time()) + 60, "scope": "customer:read"},
                                       None, algorithm="none"),
    }[bad]()
    status, body = await ask(caller, token)
    assert status == 401 and codes(body) == ["UNAUTHENTICATED"], body


async def test_a_channel_claim_binds_the_caller(provider, caller):
    token = provider.token(scope="contact:write customer:read", hub_channel="website")
    start = ('mutation { startContact(input: {channel: CALLCENTER, identification: {cookieId: "j1"}}) '
             "{ contact { id } } }")
    _status, body = await ask(caller, token, start)
    assert codes(body) == ["FORBIDDEN"]


async def test_rotated_keys_are_fetched_and_verified_tokens_kept(provider, caller, hub):
    assert (await ask(caller, provider.token()))[0] == 200
    fetches = provider.fetches
    assert (await ask(caller, provider.token()))[0] == 200
    assert provider.fetches == fetches  # the JWKS is cached
    old = provider.token()
    verifier = hub.security.authn.jwt
    verifier._refetch = 0  # the test does not wait out the refetch guard (10 s)
    provider.rotate()
    assert (await ask(caller, provider.token()))[0] == 200  # a new kid: fetched again
    assert provider.fetches == fetches + 1
    assert (await ask(caller, old))[0] == 200  # verified before: kept until it expires
