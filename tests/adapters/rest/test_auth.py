"""Each auth kind against a server that checks it, OAuth2 token caching and renewal, and secrets that
never show in logs, errors or reprs."""

from __future__ import annotations

import asyncio
import base64
import logging

import pytest

from hub.ports import AdapterError
from tests.adapters.rest.conftest import MEMBERS
from tests.adapters.rest.server import CLIENT_ID, CLIENT_SECRET, TOKEN_PATH

KEY = "anna@example.com"
TOKEN = "bearer-Secret-9f2c"
API_KEY = "apikey-Secret-77aa"
PASSWORD = "basic-Secret-4e1d"


def oauth(base_url: str, **extra) -> dict:
    return {
        "kind": "oauth2", "token_url": f"{base_url}{TOKEN_PATH}", "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET, "scope": "members:read", **extra,
    }


KINDS = {
    "bearer": (("bearer", TOKEN), lambda url: {"kind": "bearer", "token": TOKEN}),
    "api_key": (("api_key", "X-Loyalty-Key", API_KEY),
                lambda url: {"kind": "api_key", "header": "X-Loyalty-Key", "key": API_KEY}),
    "basic": (("basic", "hub", PASSWORD), lambda url: {"kind": "basic", "username": "hub", "password": PASSWORD}),
    "oauth2-basic": (("oauth2",), lambda url: oauth(url)),
    "oauth2-body": (("oauth2",), lambda url: oauth(url, client_auth="body")),
}


@pytest.mark.parametrize("kind", list(KINDS))
async def test_each_auth_kind_is_accepted_and_the_wrong_secret_is_refused(system, base_url, make_adapter, kind):
    system.add(KEY, firstName="Anna")
    system.auth, auth = KINDS[kind]
    adapter = await make_adapter(base_url, fetch=MEMBERS, auth=auth(base_url))
    assert (await adapter.fetch([KEY]))[KEY]["firstName"] == "Anna"
    assert (await adapter.check()).ok

    # The system now wants other credentials: a 401 is not retried (no use), and is reported.
    system.auth = ("bearer", "something-else")
    with pytest.raises(AdapterError, match="HTTP 401"):
        await adapter.fetch([KEY])


async def test_static_auth_headers_are_what_the_system_expects(system, base_url, make_adapter):
    system.add(KEY)
    adapter = await make_adapter(base_url, fetch=MEMBERS, auth={"kind": "basic", "username": "hub", "password": PASSWORD})
    await adapter.fetch([KEY])
    (hit,) = system.requests("/members")
    assert hit.headers["authorization"] == "Basic " + base64.b64encode(f"hub:{PASSWORD}".encode()).decode()


async def test_oauth2_token_is_cached_and_fetched_once_for_concurrent_requests(system, base_url, make_adapter):
    for i in range(5):
        system.add(f"m{i}@example.com")
    system.auth = ("oauth2",)
    adapter = await make_adapter(base_url, fetch=MEMBERS, auth=oauth(base_url))
    await asyncio.gather(*(adapter.fetch([f"m{i}@example.com"]) for i in range(5)))
    await adapter.fetch(["m0@example.com", "m1@example.com"])
    assert len(system.token_requests) == 1
    (form,) = {h.body.decode() for h in system.token_requests}
    assert "grant_type=client_credentials" in form and "scope=members%3Aread" in form
    assert CLIENT_SECRET not in form  # client_auth basic: the secret is in the Authorization header


async def test_oauth2_token_is_renewed_before_it_expires(system, base_url, make_adapter):
    system.add(KEY)
    system.auth, system.token_ttl = ("oauth2",), 1  # renewed after half its lifetime at the latest
    adapter = await make_adapter(base_url, fetch=MEMBERS, auth=oauth(base_url))
    await adapter.fetch([KEY])
    await asyncio.sleep(0.6)
    await adapter.fetch([KEY])
    assert len(system.token_requests) == 2
    assert len(system.requests("/members")) == 2, "no request went out with an expiring token"


async def test_oauth2_401_renews_the_token_once_and_retries(system, base_url, make_adapter):
    system.add(KEY)
    system.auth = ("oauth2",)
    adapter = await make_adapter(base_url, fetch=MEMBERS, auth=oauth(base_url))
    await adapter.fetch([KEY])
    system.revoke_tokens()  # the system forgets its tokens: the cached one now gets 401
    assert KEY in await adapter.fetch([KEY])
    assert len(system.token_requests) == 2
    assert len(system.requests("/members")) == 3  # ok, 401, ok with the new token


async def test_oauth2_refused_client_is_reported_with_the_oauth_error_code(system, base_url, make_adapter):
    system.auth = ("oauth2",)
    adapter = await make_adapter(base_url, fetch=MEMBERS, auth=oauth(base_url, client_secret="wrong-Secret-0000"))
    with pytest.raises(AdapterError, match=r"OAuth2 token request refused \(HTTP 401: invalid_client\)"):
        await adapter.fetch([KEY])
    assert system.requests("/members") == []
    health = await adapter.check()
    assert not health.ok and "invalid_client" in health.detail


async def test_oauth2_token_endpoint_down_is_an_adapter_error(system, base_url, dead_url, make_adapter):
    adapter = await make_adapter(base_url, fetch=MEMBERS, auth=oauth(dead_url))
    with pytest.raises(AdapterError, match=r"OAuth2 token request failed \(ConnectError\)"):
        await adapter.fetch([KEY])


@pytest.mark.parametrize("kind", list(KINDS))
async def test_secrets_never_show_in_logs_errors_or_reprs(system, base_url, dead_url, make_adapter, caplog, kind):
    caplog.set_level(logging.DEBUG)
    system.add(KEY)
    system.auth, auth = KINDS[kind]
    adapter = await make_adapter(base_url, fetch=MEMBERS, events={"path": "/events"}, auth=auth(base_url))
    await adapter.fetch([KEY])  # a token is issued (oauth2)
    texts = [repr(adapter), repr(adapter.config), str(adapter.config), repr(adapter._credentials)]

    system.fail_always, system.retry_after = 503, "0"
    with pytest.raises(AdapterError) as err:
        await adapter.fetch([KEY])
    texts.append(str(err.value))
    system.fail_always = None
    system.event_status, system.echo_headers = 422, True
    from hub.ports import CloudEvent, PermanentError

    with pytest.raises(PermanentError) as rejected:
        await adapter.consume(None, CloudEvent(type="customer.updated", source="urn:test", data={}))
    texts.append(str(rejected.value))
    assert "HTTP 422" in texts[-1] and "***" in texts[-1]  # the echoed secrets are scrubbed

    system.auth = ("bearer", "something-else")
    with pytest.raises(AdapterError) as refused:
        await adapter.fetch([KEY])
    texts.append(str(refused.value))
    texts.append(str(await adapter.check()))

    dead = await make_adapter(dead_url, fetch=MEMBERS, auth=auth(dead_url))
    with pytest.raises(AdapterError) as unreachable:
        await dead.fetch([KEY])
    texts += [str(unreachable.value), str(await dead.check())]

    secrets = {
        "bearer": [TOKEN], "api_key": [API_KEY],
        "basic": [PASSWORD, base64.b64encode(f"hub:{PASSWORD}".encode()).decode()],
    }.get(kind, [CLIENT_SECRET, *system.tokens])
    everything = "\n".join([*texts, caplog.text])
    for secret in secrets:
        assert secret not in everything, f"a secret leaked ({kind})"
    assert KEY not in "\n".join(texts), "keys are personal data: errors name the path template"
