"""Fuzzing the API with schemathesis: operations generated from the published SDL (valid and odd
values, every root field), sent to a running `hub serve` with a key holding every scope. No answer may
be a 5xx, and no error may be INTERNAL: whatever a caller sends is the caller's mistake or fine."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import schemathesis
from graphql import NameNode, ObjectFieldNode, introspection_from_schema
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.graphql import nodes

from hub.api.schema import build_schema

HUB = str(Path(sys.executable).with_name("hub"))
EXAMPLES = 60  # per root field: 27+ fields, over 1,000 cases in all
CALLS: list[int] = []

schemathesis.graphql.scalar(
    "DateTime",
    st.datetimes(timezones=st.just(__import__("datetime").UTC)).map(lambda d: nodes.String(d.isoformat()))
    | st.text(max_size=30).map(nodes.String),
)
schemathesis.graphql.scalar(
    "JSON", st.one_of(st.text(max_size=20).map(nodes.String), st.integers().map(nodes.Int))
)
schemathesis.graphql.scalar(
    "_Any", st.fixed_dictionaries({"__typename": st.just("Customer"), "id": st.text(max_size=40)}).map(
        lambda d: nodes.Object([ObjectFieldNode(name=NameNode(value=k), value=nodes.String(v)) for k, v in d.items()])
    ),
)
# From the code's schema by introspection: the published SDL imports federation's directives through
# @link (hub.api.federation), which a plain SDL loader cannot resolve. tests/unit/test_schema_sdl.py holds
# the published SDL to the code.
schema = schemathesis.graphql.from_dict(introspection_from_schema(build_schema()._schema))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def running_hub(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    env = {**os.environ, "HUB_DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'hub.db'}", "HUB_AUTH": "required",
           "HUB_RATE_LIMIT": "0", "HUB_RELOAD_ON_CHANGE": "false", "HUB_NBA_BUDGET_MS": "200"}
    created = subprocess.run([HUB, "keys", "create", "fuzzer", "--scopes", ",".join(sorted(_all_scopes()))],
                             capture_output=True, text=True, env=env, timeout=60, check=True)
    token = created.stdout.strip().splitlines()[-1]
    port = _free_port()
    log = (folder / "hub.log").open("w")
    proc = subprocess.Popen([HUB, "serve", "--port", str(port), "--log-level", "warning"], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, (folder / "hub.log").read_text()
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        assert time.monotonic() < deadline, "the hub did not come up"
        time.sleep(0.1)
    yield url, token, folder / "hub.log"
    proc.terminate()
    proc.wait(timeout=20)
    log.close()


def _all_scopes():
    from hub.security.scopes import ALL_SCOPES

    return ALL_SCOPES


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_input_breaks_the_hub(case, running_hub):
    url, token, _log = running_hub
    CALLS.append(1)
    response = case.call(base_url=f"{url}/graphql", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code < 500, (case.body, response.text)
    body = response.json()
    codes = [(e.get("extensions") or {}).get("code") for e in body.get("errors") or []]
    assert "INTERNAL" not in codes, (case.body, body)
    assert all(codes), ("every error has a code", case.body, body)


def test_the_fuzzing_sent_over_a_thousand_cases():
    """Runs after the fuzzing above (file order), which it counts: run the module, not this alone."""
    assert len(CALLS) >= 1000, len(CALLS)
