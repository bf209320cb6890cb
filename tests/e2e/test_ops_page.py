"""The /ops page with authentication off (the demo): every panel renders, data is escaped, actions need
the page's own origin; and how the health panel names a system's state (up, slow, down, breaker open)."""

from __future__ import annotations

import asyncio

import pytest

from hub.api.ops.panels import _system, chosen_period
from hub.core.errors import BadInput
from hub.ports import Health
from hub_adapters.generic.rest.resilience import CircuitBreaker


async def test_every_panel_renders_open_when_auth_is_off(client, hub):
    for path, marker in (("/ops", 'id="systems"'), ("/ops/flows", 'id="flows"'), ("/ops/queues", "Dead letters"),
                         ("/ops/marketing", 'id="funnel"')):
        response = await client.get(path)
        assert response.status_code == 200, (path, response.text[:300])
        assert marker in response.text, path
        assert response.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in response.headers["content-security-policy"]
        assert 'href="/ops/static/ops.css"' in response.text
    assert (await client.get("/ops/login")).headers["location"] == "/ops"
    for asset in ("ops.css", "ops.js", "favicon.svg"):
        assert (await client.get(f"/ops/static/{asset}")).status_code == 200
    assert (await client.get("/ops/static/../../app.py")).status_code == 404
    assert (await client.get("/favicon.ico")).headers["content-type"].startswith("image/svg+xml")
    # Even open, an action must come from the page (SameSite does not apply without a cookie).
    assert (await client.post("/ops/dead-letters/replay", data={"all": "1"})).status_code == 403
    flows = (await client.get("/ops/flows")).text
    token = flows.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    ran = await client.post("/ops/flows/run", data={"name": "request-status-to-cm", "csrf": token},
                            headers={"origin": "http://hub.test"})
    assert ran.status_code == 303 and "delivered=0" in ran.headers["location"]


async def test_a_bad_period_is_a_400_page(client):
    response = await client.get("/ops/marketing?from=2026-13-40")
    assert response.status_code == 400 and "YYYY-MM-DD" in response.text
    with pytest.raises(BadInput):
        chosen_period("2026-02-02", "2026-02-01")
    chosen = chosen_period("2026-02-01", "2026-02-01")
    assert (chosen.period.end - chosen.period.start).days == 1  # the `to` day is included


class System:
    """A system's check as the health panel sees it: an answer after `delay` seconds, and maybe the
    REST adapter's circuit breaker."""

    def __init__(self, health: Health, delay: float = 0, breaker: CircuitBreaker | None = None):
        self.health, self.delay, self.breaker = health, delay, breaker

    async def check(self) -> Health:
        await asyncio.sleep(self.delay)
        return self.health


async def test_the_health_panel_names_each_state():
    assert (await _system("a", System(Health(True, "ok")), 2.0, False)).state == "up"
    assert (await _system("b", System(Health(True, "ok"), delay=0.15), 0.2, False)).state == "slow"
    down = await _system("c", System(Health(False, "SELECT * FROM secrets WHERE key='x'")), 2.0, True)
    assert down.state == "down" and "'x'" not in down.detail and down.essential
    breaker = CircuitBreaker(threshold=1, cooldown=60)
    breaker.failure(breaker.admit())
    assert (await _system("d", System(Health(True), breaker=breaker), 2.0, False)).state == "breaker open"
