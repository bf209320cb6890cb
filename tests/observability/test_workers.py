"""`hub serve --workers 2`: whichever worker answers a scrape answers with the sum of both (prometheus-
client's multiprocess mode, its folder made by `hub serve`), on the hub's port and on HUB_METRICS_PORT."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.faults.conftest import free_port
from tests.support import eventually, gql

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres, pytest.mark.slow]
CALLS = 12


def operations_counted(text: str, name: str) -> float:
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "hub_graphql_operation_duration_seconds_count" and s.labels.get("operation") == name
    )


@pytest.mark.parametrize("own_port", [False, True], ids=["hub-port", "metrics-port"])
async def test_every_worker_answers_with_the_sum(settings_for, hub_process, monkeypatch, own_port):
    metrics_url = None
    if own_port:
        port = free_port()
        monkeypatch.setenv("HUB_METRICS_PORT", str(port))
        metrics_url = f"http://127.0.0.1:{port}/metrics"
    hub = hub_process(settings_for(), "--workers", "2")
    await hub.wait_ready(timeout=90)
    metrics_url = metrics_url or f"{hub.url}/metrics"

    processes: set[int] = set()

    async def both_answer() -> bool:
        async with httpx.AsyncClient(base_url=hub.url, timeout=10) as fresh:  # a new connection each time
            processes.add((await fresh.get("/healthz")).json()["process"])
        return len(processes) == 2

    await eventually(both_answer, timeout=30, interval=0.05)
    for _ in range(CALLS):  # a connection each: the calls land on both workers
        async with hub.client() as client:
            await gql(client, "query CountedTwice { offers { id } }")

    answers = []
    for _ in range(8):  # a connection each: the scrapes land on both workers too
        async with httpx.AsyncClient(timeout=10) as fresh:
            scrape = await fresh.get(metrics_url)
            assert scrape.status_code == 200, scrape.text
            answers.append(operations_counted(scrape.text, "CountedTwice"))
            assert "python_gc_objects_collected_total" not in scrape.text  # the multiprocess registry
    assert answers == [CALLS] * len(answers)
    if own_port:
        async with hub.client() as client:
            assert (await client.get("/metrics")).status_code == 404
