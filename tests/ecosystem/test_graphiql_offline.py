"""GraphiQL works offline: the page the hub serves references nothing outside the hub, every asset it
references is served (200, its content type), the page's Content-Security-Policy allows nothing else,
and the vendored copies are the versions tests/node pins (tools/vendor_graphiql.py refreshes them)."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from importlib.resources import files

import httpx
import pytest

from hub.api.graphiql import ASSETS


class References(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str]] = []  # (tag, url)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.found.append((tag, value))


@pytest.fixture
async def anonymous(served):
    async with served.client(key="") as client:
        yield client


async def page(client: httpx.AsyncClient) -> httpx.Response:
    response = await client.get("/graphql", headers={"accept": "text/html"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    return response


async def test_the_page_references_only_the_hub(anonymous):
    response = await page(anonymous)  # no credential: the page is static and holds no data
    html = response.text
    assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", html, re.I), "an external URL in the page"
    assert "unpkg" not in html and "jsdelivr" not in html
    parser = References()
    parser.feed(html)
    urls = [url for _, url in parser.found]
    assert {tag for tag, _ in parser.found} == {"link", "script"}
    assert len([u for u in urls if u.startswith("/graphql/assets/")]) == len(ASSETS)
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy
    host = anonymous.base_url.netloc.decode()
    assert f"connect-src 'self' ws://{host} wss://{host};" in policy and "frame-ancestors 'none'" in policy


async def test_every_referenced_asset_is_served_with_its_type(anonymous):
    parser = References()
    parser.feed((await page(anonymous)).text)
    expected = {"script": "text/javascript", "link": "text/css"}
    for tag, url in parser.found:
        if url == "data:,":
            continue  # the empty icon: no request
        response = await anonymous.get(url)
        assert response.status_code == 200, url
        assert response.headers["content-type"].startswith(expected[tag]), (url, response.headers)
        assert response.headers["x-content-type-options"] == "nosniff"
        assert len(response.content) > 100
        assert "max-age" in response.headers["cache-control"]
    # Only the listed files: nothing else of the package is reachable.
    for name in ("VENDORED.json", "graphiql.html", "..%2F..%2Fapp.py", "LICENSE.react", "nope.js"):
        assert (await anonymous.get(f"/graphql/assets/{name}")).status_code == 404


async def test_the_page_runs_queries_and_subscriptions_through_the_hub(anonymous):
    """The page's own script: the fetcher is the hub's endpoint, subscriptions over its websocket, the
    headers pane on (where the user puts `Authorization: Bearer …`)."""
    script = (await anonymous.get("/graphql/assets/hub-graphiql.js")).text
    assert "GraphiQL.createFetcher" in script and "subscriptionUrl" in script
    assert "isHeadersEditorEnabled: true" in script
    bundle = (await anonymous.get("/graphql/assets/graphiql.min.js")).content
    assert b"graphql-transport-ws" in bundle  # graphql-ws is bundled: subscriptions need nothing more


def test_the_vendored_copies_are_the_pinned_versions_with_their_licenses(node_tools):
    folder = files("hub.api").joinpath("static", "graphiql")
    vendored = json.loads(folder.joinpath("VENDORED.json").read_text())
    assert set(vendored) == {"react", "react-dom", "graphiql", "@graphiql/plugin-explorer"}
    for package, entry in vendored.items():
        manifest = json.loads((node_tools / "node_modules" / package / "package.json").read_text())
        assert entry["version"] == manifest["version"], f"{package}: run tools/vendor_graphiql.py"
        assert "Permission is hereby granted" in folder.joinpath(entry["licenseFile"]).read_text()
        for name in entry["files"].split(", "):
            assert name in ASSETS
    served = (folder / "graphiql.min.js").read_bytes()
    original = (node_tools / "node_modules" / "graphiql" / "graphiql.min.js").read_bytes()
    assert served in original  # the same build, less its source-map comment


async def test_a_forged_host_header_cannot_widen_the_policy(anonymous):
    response = await anonymous.get("/graphql", headers={"accept": "text/html",
                                                        "host": "x; script-src * 'unsafe-eval'"})
    policy = response.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "unsafe-eval" not in policy and "*" not in policy
