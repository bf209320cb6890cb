"""The CM catalog: the shipped YAML loads; broken files name file, line and field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from hub.config import SHIPPED_MAPPINGS
from hub.config.loader import MappingError
from hub.model import Channel
from hub_adapters.cm.catalog import CountRule, load_catalog, parse_catalog, walk_rules

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
