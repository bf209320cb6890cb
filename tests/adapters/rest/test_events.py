"""The event destination: structured CloudEvents with an idempotency key, and which answers are done,
retried by the bus, or dead-lettered."""

from __future__ import annotations

import orjson
import pytest

from hub.events import CloudEvent
from hub.ports import AdapterError, PermanentError

CUSTOMER = "cus_0123456789abcdef0123"
EVENTS = {"path": "/events"}


def event(subject: str | None = CUSTOMER) -> CloudEvent:
    return CloudEvent(
        type="contact.response", source="urn:markiting-hub", subject=subject,
        data={"customerId": CUSTOMER, "offerId": "savings-plus", "response": "ACCEPTED"},
    )


async def test_an_event_is_posted_as_a_structured_cloudevent_with_its_id_as_idempotency_key(
    system, base_url, make_adapter
):
    adapter = await make_adapter(base_url, events=EVENTS)
    e = event()
    assert await adapter.consume(None, e) == {CUSTOMER}
    (hit,) = system.requests("/events")
    assert hit.headers["content-type"] == "application/cloudevents+json"
    assert hit.headers["idempotency-key"] == e.id
    body = orjson.loads(hit.body)
    assert body["specversion"] == "1.0" and body["id"] == e.id and body["type"] == "contact.response"
    assert body["subject"] == CUSTOMER and body["data"]["offerId"] == "savings-plus"


async def test_a_redelivered_event_is_applied_once_and_409_counts_as_done(system, base_url, make_adapter):
    adapter = await make_adapter(base_url, events=EVENTS)
    e = event()
    await adapter.consume(None, e)
    assert await adapter.consume(None, e) == {CUSTOMER}  # the system answers 409: already applied
    assert len(system.requests("/events")) == 2 and list(system.events) == [e.id]


async def test_the_idempotency_header_name_is_configurable(system, base_url, make_adapter):
    adapter = await make_adapter(base_url, events={"path": "/events", "idempotency_header": "X-Request-Id"})
    e = event()
    system.event_status = 202
    await adapter.consume(None, e)
    assert system.requests("/events")[0].headers["x-request-id"] == e.id


async def test_a_subject_that_is_no_golden_id_changes_no_customer(system, base_url, make_adapter):
    adapter = await make_adapter(base_url, events=EVENTS)
    assert await adapter.consume(None, event(subject="anna@example.com")) == set()
    assert await adapter.consume(None, event(subject=None)) == set()


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 415, 422])
async def test_a_4xx_that_will_never_succeed_is_a_permanent_error_with_the_reason(
    system, base_url, make_adapter, status
):
    system.event_status = status
    adapter = await make_adapter(base_url, events=EVENTS)
    with pytest.raises(PermanentError, match=rf"system 'loyalty': POST /events answered HTTP {status}: schema mismatch"):
        await adapter.consume(None, event())
    assert len(system.requests("/events")) == 1


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 501])
async def test_transient_answers_raise_for_the_bus_to_retry(system, base_url, make_adapter, status):
    system.event_status = status
    adapter = await make_adapter(base_url, events=EVENTS)
    with pytest.raises(AdapterError, match=f"HTTP {status}") as err:
        await adapter.consume(None, event())
    assert not isinstance(err.value, PermanentError)
    # One try per delivery: the bus owns the back-off and the dead-letter limit.
    assert len(system.requests("/events")) == 1


async def test_a_dead_destination_raises_for_the_bus_to_retry(dead_url, make_adapter):
    adapter = await make_adapter(dead_url, events=EVENTS)
    with pytest.raises(AdapterError, match=r"POST /events: cannot connect \(ConnectError\)"):
        await adapter.consume(None, event())


async def test_a_system_without_an_events_endpoint_dead_letters_with_the_reason(system, base_url, make_adapter):
    adapter = await make_adapter(base_url, fetch={"by_key": {"path": "/members/{key}"}})
    with pytest.raises(PermanentError, match="no events endpoint is configured"):
        await adapter.consume(None, event())
