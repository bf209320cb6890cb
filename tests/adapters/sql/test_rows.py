"""Rows to records: every value JSON-friendly, the many side of a join collected per key."""

from __future__ import annotations

import enum
import ipaddress
import json
import uuid
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import make_url

from hub_adapters.generic.sql.errors import Redactor
from hub_adapters.generic.sql.rows import Converter, gather

NUMBER, TEXT = Converter("number"), Converter("text")


class Tier(enum.Enum):
    GOLD = "gold"


@pytest.mark.parametrize(
    ("value", "record"),
    [
        (None, None),
        ("text", "text"),
        (True, True),
        (7, 7),
        (0.5, 0.5),
        (float("nan"), None),
        (float("inf"), None),
        (Decimal("12.50"), 12.5),
        (Decimal("100.00"), 100),
        (Decimal("123456789012345678901234567890"), 123456789012345678901234567890),
        (Decimal("NaN"), None),
        (datetime(2024, 5, 1, 10, 0, tzinfo=timezone(timedelta(hours=2))), "2024-05-01T08:00:00+00:00"),
        (datetime(2024, 5, 1, 10, 0), "2024-05-01T10:00:00+00:00"),
        (date(1990, 1, 2), "1990-01-02"),
        (time(9, 30), "09:30:00"),
        (timedelta(minutes=2), 120.0),
        (b"\x00\xff", "AP8="),
        (memoryview(b"ab"), "YWI="),
        (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
        (Tier.GOLD, "gold"),
        ({"since": date(2020, 1, 1), "n": Decimal("2")}, {"since": "2020-01-01", "n": 2}),
        ([Decimal("1.5"), None], [1.5, None]),
        (ipaddress.ip_address("10.0.0.1"), "10.0.0.1"),
    ],
)
def test_values_become_json_friendly(value, record):
    assert NUMBER.value(value) == record
    json.dumps(NUMBER.value(value))


def test_decimals_as_text_keep_their_digits():
    assert TEXT.value(Decimal("12.50")) == "12.50"
    assert TEXT.value(Decimal("0.1000000000000000055511151231257827")) == "0.1000000000000000055511151231257827"


def test_naive_timestamps_are_read_in_the_configured_zone():
    amsterdam = Converter(naive_zone=ZoneInfo("Europe/Amsterdam"))
    assert amsterdam.value(datetime(2024, 7, 1, 12, 0)) == "2024-07-01T10:00:00+00:00"  # CEST
    assert amsterdam.value(datetime(2024, 7, 1, 12, 0, tzinfo=UTC)) == "2024-07-01T12:00:00+00:00"


def test_gather_takes_the_first_row_and_collects_the_many_side():
    rows = [
        {"email": "a", "name": "A", "product": "p1", "n": Decimal("1")},
        {"email": "a", "name": "ignored", "product": "p2", "n": Decimal("2")},
        {"email": "a", "name": "A", "product": "p1", "n": None},
        {"email": "b", "name": "B", "product": None, "n": None},
        {"email": None, "name": "no key", "product": "p3", "n": None},
    ]
    records = gather(rows, str, "email", ["product", "n"], NUMBER)
    assert records == {
        "a": {"email": "a", "name": "A", "product": ["p1", "p2"], "n": [1, 2]},
        "b": {"email": "b", "name": "B", "product": [], "n": []},
    }


def test_the_redactor_hides_the_password_however_it_is_written():
    raw = "postgresql+asyncpg://hub:p%40ss%20w0rd@db/shop"
    redactor = Redactor.of(make_url(raw), raw)
    for text in (raw, "auth failed for p@ss w0rd", "dsn hub:p%40ss%20w0rd@db", "pw=p%40ss+w0rd"):
        assert "w0rd" not in redactor.clean(text), text
