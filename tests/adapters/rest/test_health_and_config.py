"""check(): status and latency, never an exception, bounded. Config: what the registry accepts and how
it reports a mistake (file:line, without echoing a secret). Lifecycle: start/close, one pooled client."""

from __future__ import annotations

import logging

import pytest

from hub.config import Settings
from hub.config.loader import MappingError, load_located
from hub.ports import AdapterContext, AdapterError, ProfileSource
from hub.registry import adapter_factories, validate_config
from hub_adapters.generic.rest import RestAdapter, RestConfig
from tests.adapters.rest.conftest import MEMBERS

# --- health ----------------------------------------------------------------------------------------


async def test_health_reports_status_and_latency(system, base_url, make_adapter):
    adapter = await make_adapter(base_url, fetch=MEMBERS, health_path="/health")
    health = await adapter.check()
    assert health.ok and health.detail.startswith("HTTP 200 in ") and health.detail.endswith(" ms")


async def test_health_of_a_failing_system_is_down(system, base_url, make_adapter):
    system.fail_always = 503
    adapter = await make_adapter(base_url, fetch=MEMBERS, health_path="/health")
    health = await adapter.check()
    assert not health.ok and "HTTP 503" in health.detail
    assert len(system.requests("/health")) == 1, "a probe is not retried"


async def test_health_without_a_path_asks_the_base_url_and_any_answer_below_500_is_up(
    system, base_url, make_adapter
):
    adapter = await make_adapter(base_url, fetch=MEMBERS)
    health = await adapter.check()
    assert health.ok and "HTTP 404" in health.detail
    assert system.requests()[0].path == "/"


async def test_health_of_a_dead_port_is_down_not_an_exception(dead_url, make_adapter):
    adapter = await make_adapter(dead_url, fetch=MEMBERS, health_path="/health")
    health = await adapter.check()
    assert health == type(health)(False, "cannot connect (ConnectError)")


async def test_health_is_bounded_by_the_timeout(system, base_url, make_adapter):
    system.delay = 5
    adapter = await make_adapter(base_url, timeout=0.3, fetch=MEMBERS, health_path="/health")
    health = await adapter.check()
    assert not health.ok and health.detail == "no answer within 0.3s"


async def test_health_says_when_the_circuit_is_open(system, base_url, make_adapter):
    system.fail_always = 503
    adapter = await make_adapter(
        base_url, fetch=MEMBERS, health_path="/health", retry={"attempts": 1},
        breaker={"failures": 1, "cooldown_seconds": 60},
    )
    with pytest.raises(AdapterError):
        await adapter.fetch(["a@example.com"])
    system.fail_always = None
    health = await adapter.check()  # the probe bypasses the breaker: it tells the system's state
    assert health.ok and "circuit open after 1 consecutive failures" in health.detail


# --- lifecycle -------------------------------------------------------------------------------------


def context(config: dict, timeout: float = 1.0) -> AdapterContext:
    return AdapterContext(system="loyalty", settings=Settings(), engine=None, config=config, timeout=timeout,
                          log=logging.getLogger("hub.system.loyalty"))


async def test_lifecycle_one_client_and_calls_before_start_fail_clearly(system, base_url):
    adapter = RestAdapter(context({"base_url": base_url, "fetch": MEMBERS}))  # a plain dict is validated too
    with pytest.raises(AdapterError, match="not started"):
        await adapter.fetch(["a@example.com"])
    assert not (await adapter.check()).ok
    await adapter.start()
    client = adapter._client
    await adapter.start()
    assert adapter._client is client, "start is idempotent: one pooled client"
    assert await adapter.fetch(["a@example.com"]) == {}
    await adapter.close()
    assert client.is_closed
    await adapter.close()


def test_the_entry_point_and_ports():
    assert adapter_factories()["rest"].load() is RestAdapter
    assert ProfileSource in RestAdapter.ports and RestAdapter.Config is RestConfig


# --- config ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"fetch": MEMBERS, "base_url": "ftp://x"}, "absolute http(s) URL"),
        ({"fetch": MEMBERS, "base_url": "https://user:pw@x.example"}, "carries no credentials"),
        ({"base_url": "https://x.example"}, "configure fetch"),
        ({"fetch": {"by_key": {"path": "/members"}}}, "names {key} once"),
        ({"fetch": {"by_key": {"path": "members/{key}"}}}, "starts with a single '/'"),
        ({"fetch": {"by_key": {"path": "/m/{id}"}}}, "unknown placeholder {id}"),
        ({"fetch": {"batch": {"path": "/m", "key_field": "id"}}}, "names {keys} once"),
        ({"fetch": {"batch": {"method": "POST", "path": "/m", "key_field": "id"}}}, 'body naming "{keys}"'),
        ({"fetch": {"batch": {"path": "/m?ids={keys}"}}}, "Field required"),
        ({"fetch": {"batch": {"path": "/m?ids={keys}", "key_field": "id", "pagination": {"style": "cursor"}}}},
         "needs next"),
        ({"fetch": {}}, "give by_key, batch or both"),
        ({"fetch": MEMBERS, "auth": {"kind": "bearer", "token": ""}}, "is empty"),
        ({"fetch": MEMBERS, "auth": {"kind": "kerberos"}}, "does not match any of the expected tags"),
        ({"fetch": MEMBERS, "base_url": "http://loyalty.example", "auth": {"kind": "bearer", "token": "t0k"}},
         "plain http"),
        ({"fetch": MEMBERS, "headers": {"Authorization": "x"}}, "credentials go under auth"),
        ({"fetch": MEMBERS, "timeout": 3}, "Extra inputs are not permitted"),
    ],
)
def test_config_mistakes_are_refused_with_a_reason(config, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        RestConfig.model_validate({"base_url": "https://loyalty.example", **config})


def test_plain_http_with_credentials_is_allowed_to_this_machine_or_when_the_network_is_trusted():
    base = {"fetch": MEMBERS, "auth": {"kind": "bearer", "token": "t0k"}}
    RestConfig.model_validate({**base, "base_url": "http://127.0.0.1:8080"})
    RestConfig.model_validate({**base, "base_url": "http://loyalty.internal", "allow_insecure_http": True})


def _problems(path, text: str) -> str:
    path.write_text(text)
    located = load_located(path)
    problems: list = []
    raw = located.data["systems"]["loyalty"]["config"]
    assert validate_config(RestAdapter, raw, ("systems", "loyalty", "config"), located, problems) is None
    return str(MappingError(problems))


MAPPING = """systems:
  loyalty:
    adapter: rest
    config:
      base_url: https://loyalty.example
      auth: {kind: bearer, token: '${LOYALTY_TOKEN}', header: X-Key}
      fetch:
        by_key: {path: /members}
      events: {path: '/events'}
"""


def test_a_mapping_mistake_is_reported_with_file_line_and_no_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("LOYALTY_TOKEN", "s3cret-from-env")
    path = tmp_path / "hub.yaml"
    text = _problems(path, MAPPING)
    assert f"{path}:8:" in text and "fetch.by_key.path" in text and "names {key} once" in text
    assert f"{path}:6:" in text and "auth.bearer.header" in text  # bearer takes no header
    assert "s3cret-from-env" not in text

    monkeypatch.delenv("LOYALTY_MISSING", raising=False)
    text = _problems(path, MAPPING.replace("'/events'", "'/events/${LOYALTY_MISSING}'"))
    assert f"{path}:9:" in text and "LOYALTY_MISSING is not set" in text


def test_secrets_from_the_environment_are_secret_in_the_config(monkeypatch, tmp_path):
    monkeypatch.setenv("LOYALTY_TOKEN", "s3cret-from-env")
    path = tmp_path / "hub.yaml"
    path.write_text(
        "config:\n  base_url: https://loyalty.example\n  auth: {kind: bearer, token: '${LOYALTY_TOKEN}'}\n"
        "  fetch: {by_key: {path: '/members/{key}'}}\n"
    )
    located = load_located(path)
    problems: list = []
    config = validate_config(RestAdapter, located.data["config"], ("config",), located, problems)
    assert problems == []
    assert config.auth.token.get_secret_value() == "s3cret-from-env"
    assert "s3cret-from-env" not in repr(config) and "s3cret-from-env" not in str(config.model_dump())
