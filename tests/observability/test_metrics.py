"""Prometheus metrics: the GraphQL operations, the bus, the caches, the outbox, at /metrics (on both
stacks), behind an operator credential when auth is on, or on HUB_METRICS_PORT."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hub.observability import metrics
from tests.support import RECORD, START, codes, eventually, gql

NAMED_QUERY = "query OpsCheck { operations { outboxBacklog } }"


def scraped(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The samples of an exposition, by (name, labels)."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def sample(samples, name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= ls)


async def scrape(client: httpx.AsyncClient) -> dict:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return scraped(response.text)


async def test_graphql_operations_and_error_codes_are_counted_by_operation_name(api):
    before = await scrape(api)
    await gql(api, NAMED_QUERY)
    await gql(api, NAMED_QUERY)
    await gql(api, "{ operations { outboxBacklog } }")  # unnamed
    bad = await gql(api, "query Broken { customer(id: 1, nope: 2) { id } }", ok=False)
    assert codes(bad) == ["GRAPHQL_VALIDATION_FAILED", "GRAPHQL_VALIDATION_FAILED"] or codes(bad)
    after = await scrape(api)

    def grew(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    count = "hub_graphql_operation_duration_seconds_count"
    assert grew(count, operation="OpsCheck", type="query") == 2
    assert grew(count, operation=metrics.ANONYMOUS, type="query") == 1
    assert grew("hub_graphql_operation_duration_seconds_bucket", operation="OpsCheck", le="+Inf") == 2
    assert grew("hub_graphql_errors_total", operation="Broken", code="GRAPHQL_VALIDATION_FAILED") >= 1
    assert grew("hub_graphql_errors_total", operation="OpsCheck") == 0


async def test_events_through_the_bus_are_counted_per_queue(api, hub):
    before = await scrape(api)
    started = (await gql(api, START, {"input": {"channel": "WEBSITE", "identification": {"email": "metrics@example.com"}}}))["startContact"]
    offer = started["nextBestActions"][0]
    await gql(api, RECORD, {"contactId": started["contact"]["id"],
                            "events": [{"type": "PROPOSITION_SHOWN", "offerId": offer["offerId"]}] * 3})
    await hub.settle(timeout=30)
    queue = next(f.queue for f in hub.mapping.flows if f.name == "contact-events-to-cm")
    after = await scrape(api)

    def grew(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert grew("hub_bus_published_total", routing_key="contact.proposition.shown") == 3
    assert grew("hub_bus_delivered_total", queue=queue) == 3
    assert grew("hub_outbox_relayed_total") >= 3
    assert grew("hub_graphql_operation_duration_seconds_count", operation="Start", type="mutation") == 1
    # CM applied them: calls to the system `cm`, counted and timed.
    assert grew("hub_system_calls_total", system="cm", call="consume", outcome="ok") >= 1
    assert grew("hub_system_call_duration_seconds_count", system="cm", call="decide") >= 1
    assert grew("hub_nba_decision_duration_seconds_count", outcome="decided") >= 1
    # The view's reads: misses first; asked again, the profile cache answers.
    assert grew("hub_read_cache_requests_total", cache="profile", result="miss") >= 1


async def test_a_malformed_message_is_counted_as_a_dead_letter(hub):
    queue = next(f.queue for f in hub.mapping.flows if f.name == "contact-events-to-cm")
    before = metrics.value("hub_bus_dead_letters_total", queue=queue)
    await hub.bus._publish_raw("contact.proposition.shown", b"not json at all", message_id="bad-1")
    await eventually(lambda: metrics.value("hub_bus_dead_letters_total", queue=queue) == before + 1, timeout=30)


async def test_failed_deliveries_are_counted_as_redeliveries(hub):
    """A handler that fails once: one redelivery, then delivered."""
    from hub.messaging.bus.base import Route

    queue = "observability.retry"
    await hub.bus.declare([Route(queue, ("observability.test",))])
    failed: list[str] = []

    async def flaky(event) -> None:
        if not failed:
            failed.append(event.id)
            raise RuntimeError("once")

    before = metrics.value("hub_bus_redelivered_total", queue=queue)
    delivered = metrics.value("hub_bus_delivered_total", queue=queue)
    await hub.bus.consume(queue, flaky)
    try:
        from hub.events import CloudEvent

        await hub.bus.publish(CloudEvent(type="observability.test", source="urn:test", data={}))
        await eventually(lambda: metrics.value("hub_bus_delivered_total", queue=queue) == delivered + 1, timeout=30)
        assert metrics.value("hub_bus_redelivered_total", queue=queue) == before + 1
    finally:
        await hub.bus.cancel(queue)
        if hub.settings.broker_url.startswith("amqp"):
            from tests.support import delete_topology

            await delete_topology(hub.settings.broker_url, hub.settings.bus_namespace, [queue])


async def test_the_sampler_reads_the_outbox_backlog_and_lag(hub):
    from hub.api.metrics import Observer
    from hub.events import CloudEvent

    await hub.relay.stop()  # nothing is published while the test looks
    async with hub.engine.begin() as tx:
        await hub.outbox.add(tx, [CloudEvent(type="contact.proposition.shown", source="urn:test", data={})] * 1)
    await asyncio.sleep(0.05)
    await Observer(hub).sample()
    assert metrics.value("hub_outbox_backlog") >= 1
    assert metrics.value("hub_outbox_relay_lag_seconds") > 0
    hub.relay.start()
    await hub.settle(timeout=30)
    await Observer(hub).sample()
    assert metrics.value("hub_outbox_backlog") == 0
    assert metrics.value("hub_outbox_relay_lag_seconds") == 0


def test_operation_names_are_bounded():
    bounded = metrics._Bounded(3)
    assert bounded(None) == metrics.ANONYMOUS and bounded("") == metrics.ANONYMOUS
    assert [bounded(n) for n in ("a", "b", "c", "d", "a")] == ["a", "b", "c", metrics.OTHER, "a"]
    assert metrics._Bounded(10)("not a name; drop table") == metrics.OTHER


# --- who may read them ------------------------------------------------------------------------------


@pytest.fixture
def hub_settings(database_url, broker_url, bus_namespace, request):
    from hub.config import Settings

    auth = "required" if "auth_on" in request.keywords else "off"
    port = request.getfixturevalue("metrics_port") if "own_port" in request.keywords else None
    return Settings(
        database_url=database_url, broker_url=broker_url, bus_namespace=bus_namespace,
        retry_backoff_seconds=0.05, relay_idle_seconds=0.1, delivery_limit=3, auth=auth, metrics_port=port,
    )


@pytest.fixture
def metrics_port() -> int:
    from tests.faults.conftest import free_port

    return free_port()


@pytest.mark.auth_on
async def test_metrics_need_an_operator_credential_when_auth_is_on(api, hub):
    missing = await api.get("/metrics")
    assert missing.status_code == 401
    assert missing.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    as_browser = await api.get("/metrics", headers={"accept": "text/html"})  # no way around it
    assert as_browser.status_code == 401
    wrong = await api.get("/metrics", headers={"authorization": "Bearer mkh_0000_nope"})
    assert wrong.status_code == 401
    channel = await hub.security.authn.keys.create("website", "contact:write,customer:read", None)
    refused = await api.get("/metrics", headers={"authorization": f"Bearer {channel}"})
    assert refused.status_code == 403
    assert refused.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    operator = await hub.security.authn.keys.create("operator", "operations:read", None)
    allowed = await api.get("/metrics", headers={"authorization": f"Bearer {operator}"})
    assert allowed.status_code == 200
    assert "hub_graphql_operation_duration_seconds" in allowed.text


@pytest.mark.own_port
async def test_metrics_on_their_own_port_when_HUB_METRICS_PORT_is_set(api, hub, metrics_port):
    from hub.api.metrics import start_observing

    assert (await api.get("/metrics")).status_code == 404  # not on the hub's port then
    observer = await start_observing(hub)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{metrics_port}") as internal:
            answer = await internal.get("/metrics")
            assert answer.status_code == 200
            assert "hub_bus_published_total" in answer.text
            assert (await internal.get("/elsewhere")).status_code == 404
            assert (await internal.post("/metrics")).status_code == 405
    finally:
        await observer.stop()


def test_files_of_dead_processes_are_marked_dead(tmp_path, monkeypatch):
    import os

    monkeypatch.setenv(metrics.MULTIPROC_ENV, str(tmp_path))
    gone = 2**22 + 12345  # above the default pid_max: no such process
    (tmp_path / f"gauge_livemax_{gone}.db").write_bytes(b"")
    (tmp_path / f"counter_{gone}.db").write_bytes(b"")
    (tmp_path / f"gauge_livemax_{os.getpid()}.db").write_bytes(b"")
    assert metrics.reap_dead() == [gone]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"counter_{gone}.db", f"gauge_livemax_{os.getpid()}.db"]


async def test_leads_are_counted_by_channel_and_status(api, hub):
    from tests.e2e.test_outbound import CALLBACKS, RESPOND, demo_ids, launch

    def leads(status: str) -> float:
        return metrics.value("hub_leads_total", channel="CALLCENTER", status=status)

    before = {s: leads(s) for s in ("PLANNED", "SENT", "RESPONDED")}
    ids = await demo_ids(api, hub)
    await launch(api, offerId="savings-plus", customerIds=[ids["bram.jansen@example.com"]], channels=["CALLCENTER"])
    await hub.settle()
    await hub.dispatcher.run_once()
    (lead,) = (await gql(api, CALLBACKS, {"limit": 10}))["callbacks"]
    await gql(api, RESPOND, {"code": lead["code"], "channel": "CALLCENTER", "response": "ACCEPTED"})
    assert {s: leads(s) - before[s] for s in before} == {"PLANNED": 1, "SENT": 1, "RESPONDED": 1}


async def test_flow_runs_are_counted(hub):
    flow = hub.flow("request-status-to-cm")
    before = metrics.value("hub_flow_runs_total", flow=flow.name, outcome="ok")
    await hub.scheduler.deliver(flow)  # a run, as `hub flows run` makes one
    assert metrics.value("hub_flow_runs_total", flow=flow.name, outcome="ok") == before + 1
