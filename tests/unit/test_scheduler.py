from datetime import UTC, datetime, time

from hub.config.mapping import Flow, FlowMode, Weekday
from hub.messaging.scheduler import last_due, next_due


def flow(mode: FlowMode, at=time(2, 0), weekday=Weekday.monday) -> Flow:
    return Flow(name="f", source="hub", destination="cm", events=["x.#"], mode=mode, at=at, weekday=weekday)


def test_daily_due_times():
    f = flow(FlowMode.DAILY)
    assert last_due(f, datetime(2026, 11, 22, 1, 59, tzinfo=UTC)) == datetime(2026, 11, 21, 2, 0, tzinfo=UTC)
    assert last_due(f, datetime(2026, 11, 22, 2, 0, tzinfo=UTC)) == datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
    assert next_due(f, datetime(2026, 11, 22, 2, 0, tzinfo=UTC)) == datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


def test_weekly_due_times():
    f = flow(FlowMode.WEEKLY, at=time(3, 30), weekday=Weekday.wednesday)
    # 2026-11-22 is a Sunday: the last Wednesday 03:30 was 2026-11-18.
    assert last_due(f, datetime(2026, 11, 22, 12, 0, tzinfo=UTC)) == datetime(2026, 11, 18, 3, 30, tzinfo=UTC)
    assert last_due(f, datetime(2026, 11, 25, 3, 29, tzinfo=UTC)) == datetime(2026, 11, 18, 3, 30, tzinfo=UTC)
    assert last_due(f, datetime(2026, 11, 25, 3, 30, tzinfo=UTC)) == datetime(2026, 11, 25, 3, 30, tzinfo=UTC)
    assert next_due(f, datetime(2026, 11, 22, 12, 0, tzinfo=UTC)) == datetime(2026, 11, 25, 3, 30, tzinfo=UTC)
