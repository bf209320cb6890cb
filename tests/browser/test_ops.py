"""The operations and marketing page in a real Chromium (Playwright), against the hub served by uvicorn
with authentication on: an operator signs in with an API key, clicks through every panel, runs a batch
flow, replays a dead letter made for real (an external loyalty system, a real HTTP server, was down for an
erasure; it is back) after a confirmation, and a marketer reads the offer funnel and downloads it as CSV;
the numbers are the ones recorded through the API. A campaign whose offer's title is a script shows as
text. Screenshots of every panel are saved (test-artifacts/screenshots/); no console errors."""

from __future__ import annotations

import contextlib
import csv
import io
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hub.config import SHIPPED_MAPPINGS, Settings
from tests.browser.conftest import live_server, screenshot
from tests.reporting_data import Recorded, expected_funnel, make_marketing_data
from tests.support import eventually, gql, serving, start_contact

XSS = "<script>window.__pwned = 1</script><img src=x onerror=\"window.__pwned = 2\">"
ERASE = "mutation($id: ID!) { eraseCustomer(id: $id) { id status } }"
OPS_SCOPES = "operations:read,operations:write,reports:read"


@dataclass
class Loyalty:
    """An external loyalty system that is down (503) until the test brings it back."""

    members: dict[str, dict[str, Any]] = field(default_factory=dict)
    down: bool = True


def loyalty_app(state: Loyalty) -> Starlette:
    async def member(request: Request) -> Response:
        key = request.path_params["key"]
        if request.method == "DELETE":
            if state.down:
                return JSONResponse({"error": "down for maintenance"}, status_code=503)
            return Response(status_code=204 if state.members.pop(key, None) else 404)
        found = state.members.get(key)
        return JSONResponse(found) if found else JSONResponse({"error": "unknown"}, status_code=404)

    return Starlette(routes=[Route("/members/{key}", member, methods=["GET", "DELETE"])])


def mappings_with(folder: Path, loyalty_url: str, print_folder: Path) -> Path:
    """The shipped deployment, plus a loyalty system (REST) that handles erasures, and an offer whose
    title is markup (it must show as text)."""
    shutil.copytree(SHIPPED_MAPPINGS, folder)
    hub_yaml = folder / "hub.yaml"
    data = yaml.safe_load(hub_yaml.read_text())
    data["systems"]["print"]["config"]["folder"] = str(print_folder)
    data["systems"]["loyalty"] = {
        "adapter": "rest",
        "key": "email",
        "timeout_seconds": 2,
        "config": {
            "base_url": loyalty_url,
            "fetch": {"by_key": {"path": "/members/{key}"}},
            "privacy": {"erase": {"path": "/members/{key}"}},
            "breaker": None,
        },
        "profile": {"attributes.tier": "tier"},
    }
    hub_yaml.write_text(yaml.safe_dump(data, sort_keys=False))
    offers_yaml = folder / "cm" / "offers.yaml"
    offers = yaml.safe_load(offers_yaml.read_text())
    offers["offers"].append({
        "id": "script-offer", "title": XSS, "channels": ["WEBSITE", "EMAIL"], "value": 10, "priority": 1,
    })
    offers_yaml.write_text(yaml.safe_dump(offers, sort_keys=False))
    return folder


@dataclass
class Scene:
    url: str
    key: str
    recorded: Recorded
    dead_letter: str
    loyalty: Loyalty


@pytest.fixture
def scene(tmp_path):
    loyalty = Loyalty()
    made: dict[str, Any] = {}

    @contextlib.asynccontextmanager
    async def app():
        from hub.api.app import create_app
        from hub.demo import load_demo
        from hub.runtime import Hub

        async with serving(loyalty_app(loyalty)) as address:
            settings = Settings(
                database_url=f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}", broker_url="memory://",
                auth="required", mappings_dir=mappings_with(tmp_path / "mappings", f"http://{address}",
                                                            tmp_path / "print"),
                retry_backoff_seconds=0.05, relay_idle_seconds=0.1, delivery_limit=2,
                outbound_interval_seconds=3600,
            )
            hub = Hub(settings)
            await hub.start()
            try:
                application = create_app(hub=hub)
                await load_demo(hub)
                api_key = await hub.security.authn.keys.create("data-loader", "contact:write,campaign:write,"
                                                               "campaign:read,privacy:write,customer:read,customer:read:pii")
                made["key"] = await hub.security.authn.keys.create("operator", OPS_SCOPES)
                transport = httpx.ASGITransport(app=application)
                async with httpx.AsyncClient(transport=transport, base_url="http://hub.test",
                                             headers={"Authorization": f"Bearer {api_key}"}) as client:
                    made["recorded"] = await make_marketing_data(client, hub, campaign_offer="script-offer")
                    # A dead letter for real: the loyalty system is down for an erasure, past the
                    # delivery limit.
                    email = "lena.loyal@example.com"
                    loyalty.members[email] = {"email": email, "tier": "gold"}
                    customer = (await start_contact(client, email=email))["customer"]["id"]
                    await gql(client, ERASE, {"id": customer})
                    letters = await eventually(lambda: _privacy_letters(hub), timeout=30)
                    made["dead_letter"] = letters[0].id
                yield application
            finally:
                await hub.close()

    with live_server(app) as server:
        yield Scene(server.url, made["key"], made["recorded"], made["dead_letter"], loyalty)


async def _privacy_letters(hub) -> list[Any]:
    return [d for d in await hub.bus.dead_letters() if "privacy.loyalty" in d.queue]


def _numbers(row) -> dict[str, int]:
    return {name: int(row.locator(f"td.{name}").inner_text()) for name in ("shown", "responded", "accepted", "rejected")}


def test_an_operator_fixes_a_dead_letter_and_a_marketer_reads_the_funnel(page, console_errors, scene, tmp_path):
    # Signing in: the page sends a browser without a cookie to the form.
    page.goto(f"{scene.url}/ops")
    assert page.url.endswith("/ops/login")
    screenshot(page, "ops-1-sign-in")
    page.fill("#key", "mkh_000000000000_notarealkeynotarealkey")
    page.click("#sign-in")
    assert "not accepted" in page.inner_text("main")
    # The refusal is a 401, which Chromium logs; expected here, so taken off the list of errors.
    assert console_errors == ["console: Failed to load resource: the server responded with a status of 401 "
                              "(Unauthorized)"]
    console_errors.clear()
    page.fill("#key", scene.key)
    page.click("#sign-in")
    page.wait_for_url(f"{scene.url}/ops")

    # Health: every system of the mapping, the bus, the store, the outbox.
    systems = page.locator("#systems tr.system")
    names = set(systems.evaluate_all("rows => rows.map(r => r.dataset.system)"))
    assert {"crm", "cm", "lm", "loyalty", "email"} <= names
    assert page.locator('tr.system[data-system="cm"] td.state').inner_text() in ("up", "slow")
    assert page.locator("#bus .state").inner_text() == "up"
    assert page.locator("#store .state").inner_text() == "up"
    assert "operator" in page.inner_text(".who")
    screenshot(page, "ops-2-health")

    # Flows: the daily request-status flow has its schedule and a "run now" button, behind a confirmation.
    page.click("nav >> text=Flows")
    page.wait_for_url(f"{scene.url}/ops/flows")
    row = page.locator('tr.flow[data-flow="request-status-to-cm"]')
    assert "daily at" in row.inner_text()
    assert page.locator('tr.flow[data-flow="leads-to-lm"] button.run').count() == 0  # realtime
    asked: list[str] = []
    page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
    row.locator("button.run").click()
    assert asked == ["Run flow request-status-to-cm now?"]
    assert page.url.endswith("/ops/flows")  # dismissed: nothing ran
    page.once("dialog", lambda d: (asked.append(d.message), d.accept()))
    row.locator("button.run").click()
    page.wait_for_url("**/ops/flows?ran=*")
    assert "Flow request-status-to-cm ran:" in page.inner_text("main .notice")
    assert int(page.inner_text("main .notice").split("ran: ")[1].split(" ")[0]) >= 1  # the requests' statuses
    assert row.locator("td.pending").inner_text() == "0"
    assert row.locator("td").nth(5).inner_text() != "—"  # the last run is this one
    screenshot(page, "ops-3-flows")

    # Queues and dead letters: the erasure that loyalty refused, with its reason.
    page.click("nav >> text=Queues and dead letters")
    page.wait_for_url(f"{scene.url}/ops/queues")
    letter = page.locator(f'tr.dead-letter[data-id="{scene.dead_letter}"]')
    assert letter.count() == 1
    assert "privacy.loyalty" in letter.inner_text()
    assert "503" in letter.locator("td.reason").inner_text()
    queue = page.locator('tr.queue[data-queue$="privacy.loyalty"] td.dead')
    assert queue.inner_text() == "1"
    assert page.locator("#outbox-backlog").count() == 1
    screenshot(page, "ops-4-dead-letter")

    # The system is back; the operator replays the letter (after confirming) and it leaves the list.
    scene.loyalty.down = False
    queue_name = letter.locator("td").nth(1).inner_text()
    page.once("dialog", lambda d: (asked.append(d.message), d.accept()))
    letter.locator("button.replay").click()
    page.wait_for_url("**/ops/queues?replayed=1")
    assert asked[-1] == f"Replay dead letter {scene.dead_letter} to {queue_name}?"
    assert "Replayed 1 dead letter" in page.inner_text("main .notice")
    deadline = time.monotonic() + 15
    while page.locator("tr.dead-letter").count() and time.monotonic() < deadline:
        page.wait_for_timeout(200)
        page.reload()
    assert page.locator("tr.dead-letter").count() == 0
    assert page.locator("#dead-letters-empty").inner_text() == "No dead letters."
    assert scene.loyalty.members == {}  # the erasure went through this time
    screenshot(page, "ops-5-replayed")

    # Marketing: the funnel as recorded, per offer and channel; the campaign; charts; CSV.
    page.click("nav >> text=Marketing")
    page.wait_for_url(f"{scene.url}/ops/marketing")
    expected = expected_funnel(scene.recorded)
    rows = page.locator("tr.funnel-row")
    shown = {}
    for i in range(rows.count()):
        row = rows.nth(i)
        shown[(row.get_attribute("data-offer"), row.get_attribute("data-channel"))] = _numbers(row)
    assert shown == expected
    website = page.locator('tr.funnel-row[data-offer="savings-plus"][data-channel="WEBSITE"] td.rate')
    assert website.inner_text() == "33.3%"
    assert page.locator("#funnel svg.chart rect").count() > 0
    assert page.locator("#segments svg.chart").count() == 1

    campaign = page.locator(f'tr.campaign-row[data-campaign="{scene.recorded.campaign_id}"]')
    assert campaign.count() >= 1
    assert campaign.first.locator("td.name").inner_text() == XSS  # shown as text, never run
    assert page.evaluate("() => window.__pwned") is None
    assert sum(int(campaign.nth(i).locator("td.planned").inner_text()) for i in range(campaign.count())) \
        == scene.recorded.campaign["planned"]
    requests = page.locator("tr.request-row")
    assert sum(int(requests.nth(i).locator("td.count").inner_text()) for i in range(requests.count())) \
        == sum(scene.recorded.requests.values())
    screenshot(page, "ops-6-marketing")

    # Another period holds none of it.
    page.fill("#from", "2020-01-01")
    page.fill("#to", "2020-01-31")
    page.click("#apply-period")
    page.wait_for_url("**/ops/marketing?from=2020-01-01&to=2020-01-31")
    assert page.locator("tr.funnel-row").count() == 0
    assert page.locator("#funnel-table-empty").count() == 1
    page.go_back()
    page.wait_for_url(f"{scene.url}/ops/marketing")

    # The CSV download for BI tools: the same rows.
    with page.expect_download() as info:
        page.click("#funnel-csv")
    download = info.value
    assert download.suggested_filename.startswith("funnel-") and download.suggested_filename.endswith(".csv")
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    table = list(csv.DictReader(io.StringIO(saved.read_text())))
    assert {(r["offerId"], r["channel"]): {k: int(r[k]) for k in ("shown", "responded", "accepted", "rejected")}
            for r in table} == expected

    # Signing out ends the session.
    page.click("#sign-out")
    page.wait_for_url("**/ops/login")
    page.goto(f"{scene.url}/ops/queues")
    assert page.url.endswith("/ops/login")

