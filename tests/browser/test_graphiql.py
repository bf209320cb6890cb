"""GraphiQL in Chromium with every request to anywhere but the hub blocked: the page renders with no
console error, a query and a subscription run with the key entered in its headers pane."""

from __future__ import annotations

import json

import httpx

from hub.config import Settings
from hub.security.scopes import ALL_SCOPES
from tests.browser.conftest import hub_app, live_server, screenshot
from tests.support import START

QUERY = 'query Who($id: ID!) { customer(id: $id) { id name } }'
SUBSCRIPTION = 'subscription Nbas($id: ID!) { nextBestActions(customerId: $id, channel: WEBSITE) { offerId } }'


def editor(label: str) -> str:
    """The CodeMirror instance of a GraphiQL editor, by its section's aria-label (the variables and
    headers editors share one section, named after the open tab; the other one is hidden)."""
    inner = ".graphiql-editor:not(.hidden) > " if label in ("Variables", "Headers") else ""
    return f"document.querySelector('section[aria-label=\"{label}\"] {inner}.CodeMirror').CodeMirror"


def set_editor(page, label: str, text: str) -> None:
    page.evaluate(f"text => {editor(label)}.setValue(text)", text)
    page.wait_for_timeout(700)  # GraphiQL takes an editor's change after a 500 ms debounce


def enter_key(page, token: str) -> None:
    """What a user does: the key in the headers pane."""
    page.get_by_role("button", name="Headers").click()
    set_editor(page, "Headers", json.dumps({"Authorization": f"Bearer {token}"}))


def run(page, document: str, variables: dict) -> dict:
    set_editor(page, "Query Editor", document)
    page.get_by_role("button", name="Variables").click()
    set_editor(page, "Variables", json.dumps(variables))
    page.locator(".graphiql-execute-button").click()
    page.locator('section[aria-label="Result Window"]').get_by_text('"data"').wait_for()
    return json.loads(page.evaluate(f"() => {editor('Result Window')}.getValue()"))


def test_graphiql_renders_offline_and_runs_a_query_and_a_subscription(page, console_errors, tmp_path):
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}", broker_url="memory://",
                        auth="required")
    with live_server(lambda: hub_app(settings)) as server:
        hub = server.app.state.hub
        token = server.run(hub.security.authn.keys.create("graphiql", ",".join(sorted(ALL_SCOPES))))
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}) as client:
            started = client.post("/graphql", json={"query": START, "variables": {"input": {
                "channel": "WEBSITE", "name": "Graph Iql", "identification": {"email": "graphiql@example.com"}}}})
        customer_id = started.json()["data"]["startContact"]["customer"]["id"]

        outside: list[str] = []

        def only_the_hub(route) -> None:
            if route.request.url.startswith(server.url):
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort()

        page.route("**/*", only_the_hub)
        page.goto(f"{server.url}/graphql")
        page.locator(".graphiql-execute-button").wait_for()
        # GraphiQL asks for the schema at once, before the user entered a key: refused (401), as it
        # must be with authentication on; the only console error, removed here as expected.
        for _ in range(100):
            if console_errors:
                break
            page.wait_for_timeout(100)
        assert console_errors and all("401" in e for e in console_errors), console_errors
        console_errors.clear()
        screenshot(page, "graphiql-loaded")

        enter_key(page, token)
        page.get_by_role("button", name="Re-fetch GraphQL schema").click()
        page.get_by_role("button", name="Show Documentation Explorer").click()
        page.locator(".graphiql-doc-explorer").get_by_text("Query", exact=True).first.wait_for()
        # GraphiQL may ask again before the key is in (its schema fetch races the headers editor): the
        # same refusal. Once the schema is shown the key works; any error from here on fails the test.
        console_errors[:] = [e for e in console_errors if "status of 401" not in e]

        answer = run(page, QUERY, {"id": customer_id})
        assert answer == {"data": {"customer": {"id": customer_id, "name": "Graph Iql"}}}
        pushed = run(page, SUBSCRIPTION, {"id": customer_id})  # over graphql-transport-ws, key in its init
        assert pushed["data"]["nextBestActions"], pushed
        screenshot(page, "graphiql-subscription")
        assert outside == [], f"the page asked for something outside the hub: {outside}"
