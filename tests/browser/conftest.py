"""Real-browser fixtures: Debian's Chromium driven by Playwright (sync API), headless.

- `browser` (per module): the system Chromium at /usr/bin/chromium (Playwright's own browser download
  is not used). Not per session: while Playwright's sync API is started, its event loop counts as the
  running loop of the main thread (it is suspended inside run_until_complete between calls), so an async
  test of another module could not run its own loop; a module of browser tests holds only sync tests. Missing: a skip with the reason on a laptop, a failure under CI=true (`make test` installs
  it: the Makefile's `browser` step).
- `page`: a fresh context and page per test; every console error and uncaught page error is recorded
  in `console_errors` and fails the test at its end (a test that provokes one on purpose removes it
  from that list); a full-page screenshot is saved on every test, passed or failed, under
  test-artifacts/screenshots/ (HUB_TEST_ARTIFACTS overrides the folder).
- `live_server(app_cm)`: serves an ASGI app with uvicorn on a free port (tests.support.serving) in an
  event loop of its own thread, so the sync browser API can drive it from the test's thread; `run(coro)`
  runs a coroutine in the server's loop (to prepare or read data through the same hub).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.conftest import UNDER_CI

CHROMIUM = os.environ.get("HUB_TEST_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("HUB_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"))
SCREENSHOTS = ARTIFACTS / "screenshots"
T = TypeVar("T")


def _unavailable(reason: str) -> None:
    if UNDER_CI:
        pytest.fail(f"{reason} (CI=true: the real-browser tests must run; `make browser` installs it)")
    pytest.skip(f"{reason}; install it to run the browser tests (`make browser`)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -e '.[dev]')")
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        _unavailable(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium chromium-driver)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def console_errors() -> list[str]:
    return []


def _artifact_name(nodeid: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid.split("::", 1)[-1]).strip("_")[:150] or "test"


@pytest.fixture
def page(browser, console_errors, request) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.on("console", lambda m: m.type == "error" and console_errors.append(f"console: {m.text}"))
    page.on("pageerror", lambda e: console_errors.append(f"page error: {e}"))
    try:
        yield page
    finally:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(Exception):  # a closed or crashed page has nothing to show
            page.screenshot(path=str(SCREENSHOTS / f"{_artifact_name(request.node.nodeid)}.png"), full_page=True)
        context.close()
    if console_errors:
        pytest.fail("the page logged errors:\n" + "\n".join(console_errors))


def screenshot(page: Any, name: str) -> Path:
    """A named screenshot (besides the one every test gets at its end), e.g. one per panel."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{_artifact_name(name)}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


class LiveServer:
    def __init__(self, url: str, loop: asyncio.AbstractEventLoop, app: Any):
        self.url = url  # http://127.0.0.1:PORT
        self.loop = loop
        self.app = app

    def run(self, coro: Awaitable[T], timeout: float = 60) -> T:
        """Run a coroutine in the server's event loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)  # type: ignore[arg-type]


@contextlib.contextmanager
def live_server(app_cm: Callable[[], contextlib.AbstractAsyncContextManager[Any]]) -> Iterator[LiveServer]:
    """Serve the ASGI app that `app_cm()` yields (entered, and left, in the server's own loop)."""
    from tests.support import serving

    ready: Future[LiveServer] = Future()
    stop: list[asyncio.Event] = []

    async def main() -> None:
        try:
            async with app_cm() as app, serving(app) as address:
                event = asyncio.Event()
                stop.append(event)
                ready.set_result(LiveServer(f"http://{address}", asyncio.get_running_loop(), app))
                await event.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            raise

    thread = threading.Thread(target=lambda: asyncio.run(main()), name="live-server", daemon=True)
    thread.start()
    server = ready.result(120)
    try:
        yield server
    finally:
        server.loop.call_soon_threadsafe(stop[0].set)
        thread.join(30)


@contextlib.asynccontextmanager
async def hub_app(settings: Any, prepare: Callable[[Any], Awaitable[None]] | None = None) -> AsyncIterator[Any]:
    """A started hub and its app (for live_server): `prepare(hub)` runs before serving."""
    from hub.api.app import create_app
    from hub.runtime import Hub

    hub = Hub(settings)
    await hub.start()
    try:
        if prepare is not None:
            await prepare(hub)
        yield create_app(hub=hub)
    finally:
        await hub.close()
