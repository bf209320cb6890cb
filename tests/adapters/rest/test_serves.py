"""A REST system serves the ports its config sets up: a flow into one without `events:`, or a profile
map on one without `fetch:`, is a mapping error at load, not a dead letter or an outage later."""

from __future__ import annotations

import pytest
import yaml

from hub.config import SHIPPED_MAPPINGS, Settings
from hub.config.loader import MappingError, load_located, validate
from hub.config.mapping import HubMapping
from hub.registry import build_systems
from hub.store.db import create_engine

LOYALTY = """
  loyalty:
    adapter: rest
    key: email
    config:
      base_url: http://127.0.0.1:9/api
      {extra}
    {profile}
"""
FLOW = """
  - name: customers-to-loyalty
    source: hub
    destination: loyalty
    events: ["customer.*"]
"""


# The test's flow comes after the shipped mapping's own.
SHIPPED_FLOWS = len(yaml.safe_load((SHIPPED_MAPPINGS / "hub.yaml").read_text())["flows"])


def build(extra: str, profile: str, flow: bool):
    text = (SHIPPED_MAPPINGS / "hub.yaml").read_text()
    text = text.replace("\nsurvivorship:", "\n" + LOYALTY.format(extra=extra, profile=profile) + "\nsurvivorship:", 1)
    if flow:
        text = text.rstrip() + "\n" + FLOW
    located = load_located("hub.yaml", text)
    mapping = validate(located, HubMapping)
    return build_systems(mapping, located, Settings(), create_engine("sqlite+aiosqlite:///:memory:")), text


def test_a_configured_rest_system_plays_both_roles():
    systems, _ = build('fetch: {by_key: {path: "/m/{key}"}}\n      events: {path: /events}',
                       "profile: {name: name}", flow=True)
    assert "loyalty" in systems.players["profile_source"]
    assert "loyalty" in systems.players["event_destination"]


@pytest.mark.parametrize(
    ("extra", "profile", "flow", "field", "port"),
    [
        ("events: {path: /events}", "profile: {name: name}", False, "systems.loyalty.profile", "ProfileSource"),
        ('fetch: {by_key: {path: "/m/{key}"}}', "profile: {name: name}", True, f"flows[{SHIPPED_FLOWS}].destination",
         "EventConsumer"),
    ],
)
def test_a_port_the_config_does_not_set_up_is_a_mapping_error(extra, profile, flow, field, port):
    with pytest.raises(MappingError) as info:
        build(extra, profile, flow)
    (problem,) = info.value.problems
    assert problem.field == field and f"not configured as a {port}" in problem.message


def test_a_secret_written_in_the_mapping_is_refused_with_its_line(monkeypatch):
    monkeypatch.setenv("LOYALTY_TOKEN", "from-the-env")
    extra = 'fetch: {by_key: {path: "/m/{key}"}}\n      auth: {kind: bearer, token: "${LOYALTY_TOKEN}"}'
    build(extra, "profile: {name: name}", flow=False)  # from the environment: fine
    literal = 'fetch: {by_key: {path: "/m/{key}"}}\n      auth: {kind: bearer, token: s3cret-in-git}'
    with pytest.raises(MappingError) as info:
        build(literal, "profile: {name: name}", flow=False)
    (problem,) = info.value.problems
    assert problem.field == "systems.loyalty.config.auth.token"
    assert "comes from the environment" in problem.message and "s3cret" not in str(info.value)
