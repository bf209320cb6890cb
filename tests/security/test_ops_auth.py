"""The /ops page behind an operator credential (auth on): signing in with an API key kept in an HttpOnly
SameSite=Strict cookie, every request checked again (a revoked key is signed out at once), the scope of
each panel and action (operations:read, operations:write, reports:read), POSTs held against CSRF; and the
report queries' scope reports:read in GraphQL."""

from __future__ import annotations

import httpx
import pytest

from tests.support import codes, gql

HOST = "http://hub.test"
ORIGIN = {"origin": HOST}


@pytest.fixture
async def browser(app):
    """A client that keeps cookies, as a browser does (follows no redirects: the tests look at them)."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=HOST) as c:
        yield c


async def sign_in(client: httpx.AsyncClient, key: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return await client.post("/ops/login", data={"key": key}, headers=ORIGIN if headers is None else headers)


def csrf_of(html: str) -> str:
    marker = 'name="csrf" value="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]


async def test_without_a_cookie_pages_go_to_sign_in_and_downloads_are_refused(browser):
    for path in ("/ops", "/ops/flows", "/ops/queues", "/ops/marketing"):
        response = await browser.get(path)
        assert (response.status_code, response.headers["location"]) == (303, "/ops/login"), path
    assert (await browser.get("/ops/funnel.csv")).status_code == 401
    refused = await browser.post("/ops/dead-letters/replay", data={"all": "1"}, headers=ORIGIN)
    assert refused.status_code == 401
    login = await browser.get("/ops/login")
    assert login.status_code == 200 and 'name="key"' in login.text
    assert "script-src 'self'" in login.headers["content-security-policy"]


async def test_signing_in_sets_a_strict_cookie_and_shows_what_the_key_may_see(browser, new_key):
    key = await new_key("operations:read,operations:write,reports:read", name="ops-all")
    response = await sign_in(browser, key)
    assert (response.status_code, response.headers["location"]) == (303, "/ops")
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/ops" in cookie
    assert "secure" not in cookie  # plain http here; on https the cookie is Secure
    page = await browser.get("/ops")
    assert page.status_code == 200 and "ops-all" in page.text
    for link in ("/ops/flows", "/ops/queues", "/ops/marketing"):
        assert f'href="{link}"' in page.text
    assert (await browser.get("/ops/marketing")).status_code == 200
    assert (await browser.get("/ops/funnel.csv")).status_code == 200
    # Signing out clears the cookie (with the page's CSRF token).
    out = await browser.post("/ops/logout", data={"csrf": csrf_of(page.text)}, headers=ORIGIN)
    assert out.status_code == 303 and 'hub_ops=""' in out.headers["set-cookie"]
    assert (await browser.get("/ops")).status_code == 303


async def test_a_bad_key_or_a_foreign_origin_does_not_sign_in(browser, new_key):
    assert (await sign_in(browser, "mkh_000000000000_notarealkeynotarealkey")).status_code == 401
    assert (await sign_in(browser, "")).status_code == 400
    key = await new_key("operations:read")
    assert (await sign_in(browser, key, {"origin": "https://evil.example"})).status_code == 403
    assert (await sign_in(browser, key, {})).status_code == 403  # no Origin, no Referer
    assert "hub_ops" not in browser.cookies


async def test_each_panel_and_action_needs_its_scope(browser, new_key, hub):
    # A key for neither page: refused at sign-in; set as a cookie by hand, each page answers 403.
    other = await new_key("customer:read", name="channel-only")
    assert (await sign_in(browser, other)).status_code == 403
    browser.cookies.set("hub_ops", other, domain="hub.test", path="/ops")
    assert (await browser.get("/ops")).status_code == 403
    assert (await browser.get("/ops/marketing")).status_code == 403
    assert (await browser.get("/ops/funnel.csv")).status_code == 403
    browser.cookies.clear()

    # reports:read alone: the marketing panel and its downloads, not the operations panels.
    marketer = await new_key("reports:read", name="marketer")
    response = await sign_in(browser, marketer)
    assert response.headers["location"] == "/ops/marketing"
    assert (await browser.get("/ops")).status_code == 403
    page = await browser.get("/ops/marketing")
    assert page.status_code == 200 and 'href="/ops/flows"' not in page.text
    assert (await browser.get("/ops/segments.csv")).status_code == 200
    browser.cookies.clear()

    # operations:read without write: panels, but no action buttons, and an action is refused.
    viewer = await new_key("operations:read", name="viewer")
    await sign_in(browser, viewer)
    queues = await browser.get("/ops/queues")
    assert queues.status_code == 200 and "Replay" not in queues.text
    assert (await browser.get("/ops/marketing")).status_code == 403
    page = await browser.get("/ops")
    refused = await browser.post("/ops/dead-letters/replay", data={"all": "1", "csrf": csrf_of(page.text)},
                                 headers=ORIGIN)
    assert refused.status_code == 403


async def test_actions_need_the_pages_token_and_origin(browser, new_key):
    key = await new_key("operations:read,operations:write", name="operator")
    await sign_in(browser, key)
    token = csrf_of((await browser.get("/ops/queues")).text)
    no_token = await browser.post("/ops/dead-letters/replay", data={"all": "1"}, headers=ORIGIN)
    assert no_token.status_code == 403
    foreign = await browser.post("/ops/dead-letters/replay", data={"all": "1", "csrf": token},
                                 headers={"origin": "https://evil.example"})
    assert foreign.status_code == 403
    done = await browser.post("/ops/dead-letters/replay", data={"all": "1", "csrf": token}, headers=ORIGIN)
    assert (done.status_code, done.headers["location"]) == (303, "/ops/queues?replayed=0")
    ran = await browser.post("/ops/flows/run", data={"name": "request-status-to-cm", "csrf": token}, headers=ORIGIN)
    assert ran.status_code == 303 and "delivered=" in ran.headers["location"]
    flows = await browser.get(ran.headers["location"])
    assert "Flow request-status-to-cm ran: 0 events delivered." in flows.text
    realtime = await browser.post("/ops/flows/run", data={"name": "leads-to-lm", "csrf": token}, headers=ORIGIN)
    assert "failed=BAD_USER_INPUT" in realtime.headers["location"]


async def test_a_revoked_key_is_signed_out_at_once(browser, new_key, hub):
    key = await new_key("operations:read", name="leaving")
    await sign_in(browser, key)
    assert (await browser.get("/ops")).status_code == 200
    assert await hub.security.authn.keys.revoke("leaving")
    response = await browser.get("/ops")
    assert (response.status_code, response.headers["location"]) == (303, "/ops/login?signed_out=1")
    assert 'hub_ops=""' in response.headers["set-cookie"]
    assert "signed out" in (await browser.get("/ops/login?signed_out=1")).text
    assert (await browser.get("/ops/funnel.csv")).status_code == 401


async def test_the_report_queries_need_reports_read(new_key, caller):
    async with caller(await new_key("operations:read")) as operator:
        body = await gql(operator, "{ funnel { offerId } }", ok=False)
        assert codes(body) == ["FORBIDDEN"]
        assert (await gql(operator, "{ deadLetters { id reason } }"))["deadLetters"] == []
        body = await gql(operator, "mutation { replayDeadLetters(all: true) }", ok=False)
        assert codes(body) == ["FORBIDDEN"]
    async with caller(await new_key("reports:read")) as marketer:
        data = await gql(marketer, "{ funnel { offerId } campaignResults { campaignId } segmentSizes { name } "
                                   "requestCounts(from: \"2020-01-01T00:00:00Z\") { count } }")
        assert data["funnel"] == [] and data["segmentSizes"]
    async with caller(await new_key("operations:read,operations:write")) as operator:
        assert (await gql(operator, "mutation { replayDeadLetters(all: true) }"))["replayDeadLetters"] == 0
        ran = await gql(operator, 'mutation { runFlow(name: "request-status-to-cm") { flow delivered } }')
        assert ran["runFlow"] == {"flow": "request-status-to-cm", "delivered": 0}
        body = await gql(operator, 'mutation { runFlow(name: "nope") { flow } }', ok=False)
        assert codes(body) == ["UNKNOWN_FLOW"]
        body = await gql(operator, "mutation { replayDeadLetters }", ok=False)
        assert codes(body) == ["BAD_USER_INPUT"]
