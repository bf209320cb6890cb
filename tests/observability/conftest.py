"""Fixtures for the observability tests: the hub with authentication on (for /metrics), an in-memory
span exporter with tracing on, and (from the fault tests) `hub serve` as real processes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.faults.conftest import hub_process, settings_for, topology  # noqa: F401 - fixtures


@pytest.fixture
def spans() -> Iterator[object]:
    """Tracing on for the test, every ended span kept in memory; off again afterwards."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from hub.observability import tracing

    tracing.shutdown()
    exporter = InMemorySpanExporter()
    tracing.setup(exporter=exporter)
    try:
        yield exporter
    finally:
        tracing.shutdown()


@pytest.fixture
async def api(hub) -> AsyncIterator[httpx.AsyncClient]:
    """The hub's app (made after tracing is set up, when the test asks for `spans` first)."""
    from hub.api.app import create_app

    transport = httpx.ASGITransport(app=create_app(hub=hub))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
        yield client


def pytest_configure(config):
    config.addinivalue_line("markers", "auth_on: the hub of this test runs with HUB_AUTH=required")
    config.addinivalue_line("markers", "own_port: the hub of this test serves metrics on HUB_METRICS_PORT")
