"""Logs: one JSON object per line with HUB_LOG_FORMAT=json, with the trace id, the operation and the
system where known; never a customer's email or a caller's key."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import subprocess

import httpx
import orjson
import pytest

from hub.observability.logs import JsonFormatter, redact
from tests.faults.conftest import HUB, free_port
from tests.support import START, eventually

EMAIL = "Secret.Person@Example.com"


@pytest.fixture
def hub_settings(database_url, broker_url, bus_namespace):
    from hub.config import Settings

    return Settings(
        database_url=database_url, broker_url=broker_url, bus_namespace=bus_namespace,
        retry_backoff_seconds=0.05, relay_idle_seconds=0.1, delivery_limit=3, auth="required",
    )


@pytest.fixture
def captured():
    """Every log line at INFO and above, formatted as HUB_LOG_FORMAT=json formats it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


async def test_json_lines_hold_trace_and_operation_but_no_email_or_key(spans, api, hub, captured):
    key = await hub.security.authn.keys.create("website", "contact:write,customer:read,customer:read:pii", None)
    auth = {"authorization": f"Bearer {key}"}
    started = await api.post(
        "/graphql", headers=auth,
        json={"query": START, "variables": {"input": {"channel": "WEBSITE", "identification": {"email": EMAIL}}}},
    )
    assert started.status_code == 200 and "errors" not in started.json(), started.text
    # A refused operation is logged (one INFO line) while the operation runs.
    refused = await api.post(
        "/graphql", headers=auth,
        json={"query": "query Lookup($e: String) { customerByKey(email: $e, phone: \"not a phone\") { id } }",
              "variables": {"e": EMAIL}},
    )
    assert refused.json().get("errors"), refused.text
    # A request with the key in a place it does not belong, and a wrong key: refused, logged.
    assert (await api.post("/graphql", headers={"authorization": f"Bearer {key}x"}, json={"query": "{ offers { id } }"})).status_code == 401
    logging.getLogger("hub.test").warning("a careless line: %s with Bearer %s", EMAIL, key)
    await hub.settle(timeout=30)

    text = captured.getvalue()
    records = lines(captured)  # every line is one JSON object
    assert records
    for secret in (EMAIL, EMAIL.lower(), key, key.split("_", 2)[2]):  # mkh_<id>_<secret>; "_" may be in it
        assert secret not in text
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    in_operation = [r for r in records if r.get("operation") == "Lookup"]
    assert in_operation, records
    assert all(len(r["trace_id"]) == 32 for r in in_operation)
    careless = next(r for r in records if r["logger"] == "hub.test")
    assert "<email>" in careless["message"] and "<redacted>" in careless["message"]


def test_a_call_to_a_system_names_it_in_the_log():
    from hub.observability import logs

    record = logging.LogRecord("hub.x", logging.WARNING, __file__, 1, "slow", (), None)
    token = logs.SYSTEM.set("crm")
    try:
        out = orjson.loads(JsonFormatter().format(record))
    finally:
        logs.SYSTEM.reset(token)
    assert out["system"] == "crm" and out["level"] == "WARNING" and "trace_id" not in out


def test_redaction():
    assert redact("mail anna.devries+x@example.co.uk now") == "mail <email> now"
    assert redact("Authorization: Bearer abc.def-ghi") == "Authorization: Bearer <redacted>"
    assert redact("key mkh_0123456789ab_" + "A" * 32) == "key <api-key>"
    assert redact("postgresql+asyncpg://hub:s3cret@db/hub") == "postgresql+asyncpg://hub:<redacted>@db/hub"
    assert redact("GET /x?token=abc&y=1") == "GET /x?token=<redacted>&y=1"


async def test_hub_serve_writes_json_lines(tmp_path):
    """`hub serve` with HUB_LOG_FORMAT=json: its own lines and uvicorn's (stderr), each one JSON object,
    and the access lines without query strings (a GET's variables may hold an email)."""
    port = free_port()
    env = {**os.environ, "HUB_LOG_FORMAT": "json", "HUB_AUTH": "off",
           "HUB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}", "HUB_BROKER_URL": "memory://"}
    log = (tmp_path / "hub.log").open("w")
    proc = await asyncio.create_subprocess_exec(
        HUB, "serve", "--port", str(port), "--log-level", "info", env=env,
        stdout=subprocess.DEVNULL, stderr=log, start_new_session=True,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            async def up() -> bool:
                assert proc.returncode is None, (tmp_path / "hub.log").read_text()
                try:
                    return (await client.get("/healthz")).status_code == 200
                except httpx.HTTPError:
                    return False

            await eventually(up, timeout=60, interval=0.2)
            query = "query Q($e: String) { customerByKey(email: $e) { id } }"
            answer = await client.get("/graphql", params={"query": query, "variables": orjson.dumps({"e": EMAIL}).decode()})
            assert answer.status_code == 200
            await client.post("/graphql", json={"query": START, "variables": {"input": {"channel": "WEBSITE", "identification": {"email": EMAIL}}}})
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)
        log.close()
    text = (tmp_path / "hub.log").read_text()
    records = [orjson.loads(line) for line in text.splitlines() if line.strip()]
    assert any(r["logger"].startswith("uvicorn") for r in records)
    access = [r for r in records if r["logger"] == "uvicorn.access"]
    assert any("GET /graphql " in r["message"] for r in access), access
    assert EMAIL not in text and EMAIL.lower() not in text and "Secret.Person" not in text
