"""Per-system metrics against a real REST system (tests/adapters/rest): calls by outcome (a slow system is
a timeout, a failing one an error) and its circuit breaker's state, as the sampler reads it."""

from __future__ import annotations

from hub.api.metrics import Observer
from hub.observability import metrics
from tests.adapters.rest.test_hub import QUERY, loyalty, wired  # noqa: F401 - fixtures
from tests.support import gql, start_contact


def calls(outcome: str) -> float:
    return metrics.value("hub_system_calls_total", system="loyalty", call="fetch", outcome=outcome)


async def test_timeouts_errors_and_the_breaker_of_a_rest_system(wired):  # noqa: F811
    hub, client, system = wired
    system.add("dee@example.com", firstName="Dee", tier="G", points="5")
    dee = (await start_contact(client, email="dee@example.com"))["customer"]["id"]
    await Observer(hub).sample()
    assert metrics.value("hub_system_breaker_state", system="loyalty") == 0  # closed
    before = {o: calls(o) for o in ("ok", "error", "timeout")}

    hub.cache.clear()
    await gql(client, QUERY, {"id": dee})
    assert calls("ok") == before["ok"] + 1

    system.delay = 5  # slower than its timeout_seconds
    hub.cache.clear()
    await gql(client, QUERY, {"id": dee}, ok=False)
    assert calls("timeout") == before["timeout"] + 1

    system.delay, system.fail_always = 0, 503
    for _ in range(3):  # until the breaker opens (failures: 2)
        hub.cache.clear()
        await gql(client, QUERY, {"id": dee}, ok=False)
    assert calls("error") >= before["error"] + 2
    await Observer(hub).sample()
    assert metrics.value("hub_system_breaker_state", system="loyalty") == 2  # open
    assert metrics.value("hub_system_call_duration_seconds_count", system="loyalty", call="fetch") >= 5
