"""The browser set-up itself: Chromium loads a page the hub serves, and console errors are caught."""

from __future__ import annotations

import json

from hub.config import Settings
from tests.browser.conftest import hub_app, live_server


def test_chromium_loads_a_page_of_the_hub_and_catches_console_errors(page, console_errors, tmp_path):
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}", broker_url="memory://")
    with live_server(lambda: hub_app(settings)) as server:
        response = page.goto(f"{server.url}/healthz")
        assert response is not None and response.status == 200
        assert json.loads(page.inner_text("body"))["ok"] is True
        page.evaluate("() => { console.error('provoked on purpose'); }")
        page.wait_for_timeout(100)
        assert console_errors == ["console: provoked on purpose"]  # and no 404: the hub serves a favicon
        console_errors.clear()  # expected: the fixture fails the test on any error left here
