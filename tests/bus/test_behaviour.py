"""One behaviour suite for every bus engine (embedded and RabbitMQ): the semantics of hub.messaging.bus.base."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from hub.events import CloudEvent
from hub.messaging.bus import PermanentError, Route, Unroutable
from tests.bus.conftest import DELIVERY_LIMIT, Recorder, bus_settings
from tests.support import eventually

ROUTES = [
    Route("cm", ("contact.#", "lead.response")),
    Route("crm", ("request.*",)),
    Route("audit", ("#",)),
    Route("shown", ("contact.proposition.shown",)),
    Route("leads", ("lead.*",)),
]


def event(type_: str = "contact.response", **data) -> CloudEvent:
    return CloudEvent(type=type_, source="urn:test", data=data or {"n": 1})


async def test_publish_consume_keeps_attributes(bus):
    await bus.declare([Route("cm", ("contact.#",))])
    sent = CloudEvent(
        type="contact.proposition.shown",
        source="urn:website",
        subject="cust-42",
        data={"offer": "solar", "rank": 1, "nested": {"ok": True}},
        time=datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
        correlationid="corr-1",
    )
    got = Recorder()
    await bus.consume("cm", got)
    await bus.publish(sent)
    await eventually(lambda: got.events)
    assert got.events == [sent]


async def test_topic_patterns_route_to_the_right_queues(bus):
    await bus.declare(ROUTES)
    types = [
        "contact.response",
        "contact.proposition.shown",
        "request.status",
        "request.status.x",
        "lead.created",
        "lead.response",
        "lead",
    ]
    for type_ in types:
        await bus.publish(event(type_))
    received = {}
    for route in ROUTES:
        got = Recorder()
        assert await bus.drain(route.queue, got) == len(got.events)
        received[route.queue] = [e.type for e in got.events]
    assert received == {
        "cm": ["contact.response", "contact.proposition.shown", "lead.response"],
        "crm": ["request.status"],
        "audit": types,
        "shown": ["contact.proposition.shown"],
        "leads": ["lead.created", "lead.response"],
    }


async def test_unroutable_raises(bus):
    await bus.declare([Route("crm", ("request.*",))])
    with pytest.raises(Unroutable):
        await bus.publish(event("contact.response"))
    with pytest.raises(Unroutable):
        await bus.publish(event("request.status.deep"))


async def test_handler_failure_is_retried_then_succeeds(bus):
    await bus.declare([Route("cm", ("contact.#",))])
    got = Recorder(fail=lambda e, n: RuntimeError("CM is down") if n < DELIVERY_LIMIT else None)
    await bus.consume("cm", got)
    sent = event()
    await bus.publish(sent)
    await eventually(lambda: got.events)
    assert got.calls == [sent.id] * DELIVERY_LIMIT
    assert await bus.dead_letters() == []


async def test_poison_message_dead_letters_after_the_limit_with_reason(bus):
    await bus.declare([Route("cm", ("contact.#",))])
    poison, fine = event(kind="poison"), event(kind="fine")
    got = Recorder(fail=lambda e, n: ValueError("cannot map field x") if e.data["kind"] == "poison" else None)
    await bus.consume("cm", got)
    await bus.publish(poison)
    await bus.publish(fine)
    letters = await eventually(bus.dead_letters)
    assert got.ids == [fine.id]  # the other message flowed on
    assert got.calls.count(poison.id) == DELIVERY_LIMIT
    (letter,) = letters
    assert letter.id == poison.id and letter.queue == "cm"
    assert letter.attempts == DELIVERY_LIMIT
    assert "ValueError" in letter.reason and "cannot map field x" in letter.reason
    assert CloudEvent.from_json(letter.body) == poison
    assert letter.dead_at is not None
    await asyncio.sleep(0.2)
    assert got.calls.count(poison.id) == DELIVERY_LIMIT


async def test_permanent_error_dead_letters_at_once(bus):
    await bus.declare([Route("cm", ("contact.#",))])
    got = Recorder(fail=lambda e, n: PermanentError("customer unknown"))
    await bus.consume("cm", got)
    sent = event()
    await bus.publish(sent)
    (letter,) = await eventually(bus.dead_letters)
    assert got.calls == [sent.id]
    assert letter.attempts == 1
    assert letter.reason == "PermanentError: customer unknown"


async def test_malformed_body_dead_letters_while_others_flow(bus):
    await bus.declare([Route("cm", ("contact.#",))])
    got = Recorder()
    await bus.consume("cm", got)
    await bus._publish_raw("contact.response", b"{not json", message_id="raw-1")
    await bus._publish_raw("contact.response", b'{"specversion": "0.3", "id": "x"}', message_id="raw-2")
    good = event()
    await bus.publish(good)
    await eventually(lambda: got.events)
    letters = await eventually(lambda: _when_len(bus.dead_letters(), 2))
    assert got.ids == [good.id]
    assert {letter.id for letter in letters} == {"raw-1", "raw-2"}
    by_id = {letter.id: letter for letter in letters}
    assert by_id["raw-1"].reason.startswith("MalformedEvent: body is not JSON")
    assert "specversion" in by_id["raw-2"].reason
    assert by_id["raw-1"].body == b"{not json"


async def _when_len(coro, n):
    value = await coro
    return value if len(value) == n else None


async def test_replay_returns_a_dead_letter_to_its_queue(bus):
    await bus.declare(ROUTES)
    got = Recorder(fail=lambda e, n: PermanentError("not yet") if len(got.calls) == 1 else None)
    await bus.consume("crm", got)
    sent = event("request.status")  # also routed to 'audit', which must not get it twice
    await bus.publish(sent)
    (letter,) = await eventually(lambda: bus.dead_letters("crm"))
    assert await bus.dead_letters("cm") == []
    assert await bus.replay(["no-such-id"]) == 0
    assert await bus.replay([letter.id]) == 1
    await eventually(lambda: got.events)
    assert got.ids == [sent.id]
    assert await bus.dead_letters() == []
    audit = Recorder()
    assert await bus.drain("audit", audit) == 1


async def test_a_replayed_letter_that_fails_again_is_sent_back_once_per_replay(bus):
    await bus.declare([Route("cm", ("contact.#",))])
    broken = Recorder(fail=lambda e, n: PermanentError("still broken"))
    await bus.consume("cm", broken)
    sent = event()
    await bus.publish(sent)
    (letter,) = await eventually(lambda: bus.dead_letters("cm"))
    for attempt in range(2, 5):
        assert await bus.replay([letter.id]) == 1
        await eventually(lambda n=attempt: broken.calls.count(sent.id) == n)
        (letter,) = await eventually(lambda: bus.dead_letters("cm"))
    assert broken.calls.count(sent.id) == 4


async def test_replay_all(bus):
    await bus.declare([Route("cm", ("contact.#",))])
    broken = Recorder(fail=lambda e, n: PermanentError("no"))
    await bus.consume("cm", broken)
    for _ in range(3):
        await bus.publish(event())
    await eventually(lambda: _when_len(bus.dead_letters(), 3))
    await bus.cancel("cm")
    assert await bus.replay() == 3
    got = Recorder()
    assert await bus.drain("cm", got) == 3


async def test_drain_delivers_what_is_queued_and_counts(bus):
    await bus.declare([Route("daily", ("request.status",))])
    sent = [event("request.status", n=i) for i in range(5)]
    for e in sent:
        await bus.publish(e)
    got = Recorder()
    assert await bus.drain("daily", got) == 5
    assert got.ids == [e.id for e in sent]
    assert await bus.drain("daily", got) == 0


async def test_drain_failure_stays_queued_for_the_next_drain(bus):
    await bus.declare([Route("daily", ("request.status",))])
    first, second = event("request.status", n=1), event("request.status", n=2)
    await bus.publish(first)
    await bus.publish(second)
    got = Recorder(fail=lambda e, n: RuntimeError("later") if e.id == first.id and n == 1 else None)
    assert await bus.drain("daily", got) == 1
    assert got.ids == [second.id]
    await asyncio.sleep(0.1)  # past the back-off
    assert await bus.drain("daily", got) == 1
    assert got.ids == [second.id, first.id]


async def test_cancel_then_consume_again_resumes_without_loss(bus):
    await bus.declare([Route("cm", ("contact.#",))])
    started, never = asyncio.Event(), asyncio.Event()

    async def stuck(e: CloudEvent) -> None:
        started.set()
        await never.wait()

    sent = [event(n=i) for i in range(3)]
    await bus.consume("cm", stuck)
    await bus.publish(sent[0])
    await asyncio.wait_for(started.wait(), 10)
    await bus.cancel("cm")  # the message being handled is not settled: it stays
    await bus.publish(sent[1])
    await bus.publish(sent[2])
    got = Recorder()
    await bus.consume("cm", got)
    await eventually(lambda: len(got.events) == 3)
    assert sorted(got.ids) == sorted(e.id for e in sent)
    assert await bus.dead_letters() == []


async def test_order_within_a_queue_is_publish_order(bus):
    await bus.declare([Route("cm", ("contact.#",))])
    sent = [event(n=i) for i in range(40)]
    for e in sent:
        await bus.publish(e)
    got = Recorder()
    await bus.consume("cm", got)
    await eventually(lambda: len(got.events) == len(sent))
    assert got.ids == [e.id for e in sent]


async def test_stats_show_depth_and_dead_letters(bus):
    await bus.declare([Route("cm", ("contact.#",)), Route("crm", ("request.*",))])
    for _ in range(2):
        await bus.publish(event("contact.response"))
    await bus.consume("crm", Recorder(fail=lambda e, n: PermanentError("bad request")))
    await bus.publish(event("request.status"))
    await eventually(bus.dead_letters)
    stats = {s.queue: s for s in await bus.stats()}
    assert (stats["cm"].depth, stats["cm"].dead_letters) == (2, 0)
    assert (stats["crm"].depth, stats["crm"].dead_letters) == (0, 1)
    # reading dead letters and stats loses nothing
    assert len(await bus.dead_letters()) == 1


async def test_broadcast_listeners_hear_matching_events_and_make_them_routable(bus):
    await bus.declare([Route("crm", ("request.*",))])
    heard, also = Recorder(), Recorder()
    await bus.broadcast(["hub.customer.changed"], heard)
    await bus.broadcast(["hub.#", "request.*"], also)
    changed = event("hub.customer.changed", system="cm", customerIds=["c1"])
    await bus.publish(changed)  # only listeners match: routed, not Unroutable
    await bus.publish(event("request.status"))
    with pytest.raises(Unroutable):
        await bus.publish(event("lead.created"))
    await eventually(lambda: len(also.events) == 2 and heard.events)
    assert heard.events == [changed]
    assert [e.type for e in also.events] == ["hub.customer.changed", "request.status"]
    # Listeners never take a durable queue's messages away.
    got = Recorder()
    assert await bus.drain("crm", got) == 1 and [e.type for e in got.events] == ["request.status"]


async def test_a_failing_listener_does_not_stop_the_others(bus):
    await bus.declare([Route("audit", ("#",))])
    failing = Recorder(fail=lambda e, n: RuntimeError("boom"))
    fine = Recorder()
    await bus.broadcast(["x.*"], failing)
    await bus.broadcast(["x.*"], fine)
    for i in range(3):
        await bus.publish(event("x.y", n=i))
    await eventually(lambda: len(fine.events) == 3)
    # Each listener has a queue of its own: the failing one hears them in its own time.
    await eventually(lambda: len(failing.calls) == 3)
    assert failing.events == []


class BatchRecorder(Recorder):
    """A Recorder that also takes batches: records each batch's ids; `fail_batch` may refuse one."""

    def __init__(self, fail=None, fail_batch=None) -> None:
        super().__init__(fail)
        self.batches: list[list[str]] = []
        self.fail_batch = fail_batch

    async def batch(self, events) -> None:
        self.batches.append([e.id for e in events])
        if self.fail_batch is not None and self.fail_batch(events):
            raise RuntimeError("this batch fails")
        for e in events:
            if self.fail is not None and self.fail(e, 1) is not None:
                raise RuntimeError("an event of the batch fails")
        self.events.extend(events)


async def test_ready_messages_come_in_batches_in_publish_order(bus):
    await bus.declare([Route("cm", ("contact.#",))])
    sent = [event("contact.response", n=i) for i in range(30)]
    assert await bus.publish_many(sent) == [None] * 30  # all confirmed, queued before anyone consumes
    got = BatchRecorder()
    await bus.consume("cm", got)
    await eventually(lambda: len(got.events) == 30)
    assert got.ids == [e.id for e in sent]
    assert any(len(b) > 1 for b in got.batches), got.batches
    assert all(len(b) <= bus_settings().prefetch for b in got.batches)  # never more than it holds
    # Settled once: nothing comes again.
    await asyncio.sleep(0.3)
    assert len(got.events) == 30


async def test_a_consumer_that_finds_a_full_batch_ready_is_lagging_until_it_has_caught_up(bus):
    # The API paces writers of new events on bus.lagging() (hub.messaging.pacing): it must say so
    # while a backlog waits, and stop saying so once it is applied.
    await bus.declare([Route("cm", ("contact.#",))])
    assert not bus.lagging()
    gate = asyncio.Event()

    class Gated(BatchRecorder):
        async def batch(self, events) -> None:
            await gate.wait()
            await super().batch(events)

    sent = [event("contact.response", n=i) for i in range(5 * bus_settings().prefetch)]
    await bus.publish_many(sent)
    got = Gated()
    await bus.consume("cm", got)
    await eventually(bus.lagging)  # a full batch in hand, more ready behind it
    gate.set()
    await eventually(lambda: len(got.events) == len(sent))
    await eventually(lambda: not bus.lagging())
    assert got.ids == [e.id for e in sent]


async def test_a_failing_batch_is_delivered_one_by_one_and_only_the_bad_one_dies(bus):
    await bus.declare([Route("cm", ("contact.#",))])
    sent = [event("contact.response", n=i) for i in range(8)]
    bad = sent[3].id

    def fail(e, _attempt):
        return PermanentError("cannot be applied") if e.id == bad else None

    await bus.publish_many(sent)
    got = BatchRecorder(fail=fail)
    await bus.consume("cm", got)
    await eventually(lambda: len(got.events) == 7)
    assert got.ids == [e.id for e in sent if e.id != bad]
    letters = await eventually(lambda: bus.dead_letters("cm"))
    assert [d.id for d in letters] == [bad] and "cannot be applied" in letters[0].reason


async def test_publish_many_tells_each_event_what_became_of_it(bus):
    await bus.declare([Route("cm", ("contact.#",))])
    sent = [event("contact.response"), event("request.status"), event("contact.banner.click")]
    outcomes = await bus.publish_many(sent)
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], Unroutable)
    got = Recorder()
    assert await bus.drain("cm", got) == 2
    assert got.ids == [sent[0].id, sent[2].id]


async def test_a_pack_is_one_message_whose_events_come_in_order(bus):
    await bus.declare([Route("daily", ())])  # a batch flow's queue: no bindings, packs come addressed
    sent = [event("request.status", n=i) for i in range(12)]
    await bus.publish_pack("daily", [e.to_json() for e in sent], "pack:daily:1")
    assert {q.queue: q.depth for q in await bus.stats()}["daily"] == 1
    alone = Recorder()
    assert await bus.drain("daily", alone) == 12  # events, not messages
    assert alone.ids == [e.id for e in sent]
    await bus.publish_pack("daily", [e.to_json() for e in sent], "pack:daily:2")
    together = BatchRecorder()
    await bus.consume("daily", together)
    await eventually(lambda: len(together.events) == 12)
    assert together.batches == [[e.id for e in sent]]


async def test_a_pack_with_a_bad_event_applies_the_rest_and_dies_whole_for_replay(bus):
    await bus.declare([Route("daily", ())])
    sent = [event("request.status", n=i) for i in range(5)]
    bad = sent[2].id
    failing = {bad}

    def fail(e, _attempt):
        return PermanentError("cannot be applied") if e.id in failing else None

    await bus.publish_pack("daily", [e.to_json() for e in sent], "pack:daily:9")
    got = BatchRecorder(fail=fail)
    assert await bus.drain("daily", got) == 0  # the pack did not go through whole
    assert got.ids == [e.id for e in sent if e.id != bad]  # ... but every event that could, did
    letters = await eventually(lambda: bus.dead_letters("daily"))
    assert [d.id for d in letters] == ["pack:daily:9"] and "cannot be applied" in letters[0].reason
    failing.clear()  # mended: the replayed pack goes through
    assert await bus.replay() == 1
    again = Recorder()
    assert await bus.drain("daily", again) == 5
    assert again.ids == [e.id for e in sent]  # all of it again: the idempotent consumer skips the rest
