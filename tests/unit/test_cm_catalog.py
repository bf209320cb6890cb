"""The CM catalog: the shipped YAML loads; broken files name file, line and field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from hub.config import SHIPPED_MAPPINGS
from hub.config.loader import MappingError
from hub.model import Channel, RequestKind, RequestStatus
from hub_adapters.cm.catalog import CountRule, RequestRule, load_catalog, parse_catalog, walk_rules

SEGMENTS = """\
segments:
  - id: gold
    name: Gold tier
    when: {field: tier, eq: gold}
"""

OFFERS = """\
offers:
  - id: card
    title: Gold card
    channels: [WEBSITE]
    value: 100
    priority: 1
    eligibility: {segments: [gold]}
"""


def problems(offers: str = OFFERS, segments: str = SEGMENTS) -> list[tuple[str, int, str, str]]:
    with pytest.raises(MappingError) as info:
        parse_catalog("cm/offers.yaml", "cm/segments.yaml",
                      offers_text=textwrap.dedent(offers), segments_text=textwrap.dedent(segments))
    return [(p.file, p.line, p.field, p.message) for p in info.value.problems]


def test_shipped_catalog_loads():
    catalog = load_catalog(SHIPPED_MAPPINGS)
    assert 6 <= len(catalog.offers) <= 8
    assert {"adults", "gold-tier", "mortgage-prospect", "engaged"} <= {s.id for s in catalog.segments}
    for offer in catalog.offers:
        assert offer.value > 0 and offer.priority > 0 and offer.channels and offer.topics
        assert all(isinstance(c, Channel) for c in offer.channels)
    assert any(isinstance(r, CountRule) for s in catalog.segments for r in walk_rules(s.when))
    assert len(catalog.version) == 12 and catalog.version == load_catalog(SHIPPED_MAPPINGS).version


def test_minimal_catalog_and_defaults():
    c = parse_catalog("o.yaml", "s.yaml", offers_text=OFFERS, segments_text=SEGMENTS)
    card = c.offer("card")
    assert card is not None and card.later_factor == 0.5 and card.eligibility.exclude == []
    assert c.offer("nope") is None


def test_unknown_field():
    bad = OFFERS + "    colour: blue\n"
    assert problems(bad) == [("cm/offers.yaml", 8, "offers[0].colour", "Extra inputs are not permitted")]


def test_bad_channel():
    [(file, line, field, message)] = problems(OFFERS.replace("[WEBSITE]", "[WEBSITE, FAX]"))
    assert (file, line, field) == ("cm/offers.yaml", 4, "offers[0].channels[1]")
    assert "WEBSITE" in message


def test_unknown_segment_reference():
    bad = OFFERS.replace("segments: [gold]}", "segments: [gold], exclude: [minors]}")
    [(file, line, field, message)] = problems(bad)
    assert (file, line, field) == ("cm/offers.yaml", 7, "offers[0].eligibility.exclude[0]")
    assert "unknown segment 'minors'" in message


def test_duplicate_ids_in_both_files():
    offers = OFFERS + OFFERS.split("\n", 1)[1]  # the same offer twice
    segments = SEGMENTS + SEGMENTS.split("\n", 1)[1]
    found = problems(offers, segments)
    assert ("cm/offers.yaml", 8, "offers[1].id") in [p[:3] for p in found]
    assert ("cm/segments.yaml", 5, "segments[1].id") in [p[:3] for p in found]
    assert all("duplicate" in p[3] for p in found)


def test_invalid_yaml():
    [(file, line, field, message)] = problems(segments="segments:\n  - id: [gold\n    name: x\n")
    assert file == "cm/segments.yaml" and field == "(document)" and "invalid YAML" in message
    assert line >= 2


def test_bad_rules_point_at_the_rule():
    segments = """\
    segments:
      - id: s
        name: S
        when:
          all:
            - {field: age, gte: 18, lt: 30}
            - {size: 3}
            - count: {event: PAGE_VIEW, days: 7}
              gte: 1
            - not: {field: tier, eq: gold}
    """
    found = problems(OFFERS.replace("[gold]", "[]"), segments)
    by_field = {p[2]: (p[1], p[3]) for p in found}
    assert by_field["segments[0].when.all[0]"][0] == 6
    assert "exactly one of" in by_field["segments[0].when.all[0]"][1]
    assert by_field["segments[0].when.all[1]"][0] == 7
    assert by_field["segments[0].when.all[2].count.event"][0] == 8
    assert len(found) == 3  # the `not` rule is fine


def test_values_must_be_positive(tmp_path: Path):
    (tmp_path / "cm").mkdir()
    (tmp_path / "cm/offers.yaml").write_text(OFFERS.replace("value: 100", "value: 0"))
    (tmp_path / "cm/segments.yaml").write_text(SEGMENTS)
    with pytest.raises(MappingError) as info:
        load_catalog(tmp_path)
    assert str(info.value).startswith(f"{tmp_path / 'cm/offers.yaml'}:5:5: offers[0].value:")


def test_missing_file_is_reported(tmp_path: Path):
    with pytest.raises(MappingError) as info:
        load_catalog(tmp_path)
    assert {p.file for p in info.value.problems} == {str(tmp_path / "cm/offers.yaml"),
                                                     str(tmp_path / "cm/segments.yaml")}


def test_requests_rules_load_with_one_value_or_a_list():
    segments = """\
    segments:
      - id: s
        name: S
        when:
          all:
            - {requests: {kind: COMPLAINT, status: [OPEN, IN_PROGRESS]}, gte: 1}
            - {requests: {kind: [QUOTE, SERVICE], status: COMPLETED, days: 30}, lt: 3}
            - {requests: {}, eq: 0}
    """
    c = parse_catalog("o.yaml", "s.yaml", offers_text=OFFERS.replace("[gold]", "[]"),
                      segments_text=textwrap.dedent(segments))
    first, second, third = c.segments[0].when.all
    assert isinstance(first, RequestRule) and first.op == ("gte", 1)
    assert first.requests.kind == [RequestKind.COMPLAINT]
    assert first.requests.status == [RequestStatus.OPEN, RequestStatus.IN_PROGRESS]
    assert first.requests.days is None
    assert second.requests.kind == [RequestKind.QUOTE, RequestKind.SERVICE]
    assert second.requests.status == [RequestStatus.COMPLETED] and second.requests.days == 30
    assert second.op == ("lt", 3)
    assert third.requests.kind is None and third.requests.status is None and third.op == ("eq", 0)


def test_bad_requests_rules_point_at_the_rule():
    segments = """\
    segments:
      - id: s
        name: S
        when:
          any:
            - {requests: {kind: COMPLAINT, status: [OPEN, DONE]}, gte: 1}
            - {requests: {kind: PRAISE}, gte: 1}
            - {requests: {kind: COMPLAINT}}
            - {requests: {kind: COMPLAINT, state: OPEN}, gte: 1}
            - {requests: {days: 0}, gte: 1}
            - {requests: {status: []}, gte: 1}
            - {requests: {kind: COMPLAINT}, gte: 1}
    """
    found = problems(OFFERS.replace("[gold]", "[]"), segments)
    by_field = {p[2]: (p[0], p[1], p[3]) for p in found}
    assert by_field["segments[0].when.any[0].requests.status[1]"][:2] == ("cm/segments.yaml", 6)
    assert "OPEN" in by_field["segments[0].when.any[0].requests.status[1]"][2]  # names the statuses
    assert by_field["segments[0].when.any[1].requests.kind[0]"][1] == 7
    assert by_field["segments[0].when.any[2]"][1] == 8
    assert "a requests rule needs exactly one of eq, gt, gte, lt, lte (got none)" in by_field[
        "segments[0].when.any[2]"][2]
    assert by_field["segments[0].when.any[3].requests.state"][1:] == (9, "Extra inputs are not permitted")
    assert by_field["segments[0].when.any[4].requests.days"][1] == 10
    assert by_field["segments[0].when.any[5].requests.status"][1] == 11
    assert len(found) == 6  # the last rule is fine


def test_the_shipped_open_complaint_segment():
    catalog = load_catalog(SHIPPED_MAPPINGS)
    (segment,) = [s for s in catalog.segments if s.id == "open-complaint"]
    assert isinstance(segment.when, RequestRule)
    assert segment.when.requests.kind == [RequestKind.COMPLAINT]
    assert RequestStatus.COMPLETED not in (segment.when.requests.status or [])
    # It is an example: no offer refers to it, so the demo's NBAs do not depend on it.
    assert all("open-complaint" not in o.eligibility.segments + o.eligibility.exclude for o in catalog.offers)
