"""The translator: a system's record becomes its fragment of the unified customer through its mapping;
fragments merge by survivorship; a value that does not fit is named, never silently dropped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hub.config.loader import MappingError, load_located, validate
from hub.config.mapping import HubMapping
from hub.core.translate import MISSING, Translator, get_path

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)

BASE = """
roles: {contact_registry: crm, decision_engine: cm}
systems:
  crm:
    adapter: builtin-crm
    updated_at: modified
    profile:
      name: {template: "{first} {last}", transform: [trim]}
      emails: {path: contact.emails, transform: [trim, lower]}
      phones: {path: contact.phones.*.number, transform: [{e164: NL}]}
      attributes.tier: {path: level, transform: [{lookup: {table: {G: gold, S: silver}, default: basic}}]}
      attributes.birthDate: {path: dob, transform: [{date: "%d-%m-%Y"}]}
      attributes.points: {path: points, transform: [number]}
  loyalty:
    adapter: builtin-cm
    updated_at: changedAt
    profile:
      name: fullName
      products: {path: cards.*.type, transform: [upper]}
      attributes: extra
      segments: segs
survivorship:
  name: [loyalty, crm]
"""


def mapping(text: str = BASE) -> HubMapping:
    return validate(load_located("hub.yaml", text), HubMapping)


def crm_record(**over):
    record = {
        "first": " Anna ", "last": "de Vries ", "modified": "2026-04-01T10:00:00+00:00",
        "contact": {"emails": ["  Anna@Example.COM "], "phones": [{"number": "06 1234 5678"}, {"number": None}]},
        "level": "G", "dob": "03-02-1980", "points": "1200",
    }
    record.update(over)
    return record


def test_paths_walk_objects_lists_and_every_item():
    record = {"a": {"b": [{"c": 1}, {"c": 2}, {"d": 3}]}}
    assert get_path(record, "a.b.0.c") == 1
    assert get_path(record, "a.b.*.c") == [1, 2]
    assert get_path(record, "a.x") is MISSING and get_path(record, "a.b.9") is MISSING
    assert Translator(mapping()).translate("crm", {}, NOW).values == {}


def test_a_record_becomes_typed_unified_fields():
    frag = Translator(mapping()).translate("crm", crm_record(), NOW)
    assert frag.problems == []
    assert frag.values == {
        "name": "Anna de Vries",
        "emails": ["anna@example.com"],
        "phones": ["+31612345678"],
        "attributes.tier": "gold",
        "attributes.birthDate": "1980-02-03",
        "attributes.points": 1200,
    }
    assert frag.updated_at == datetime(2026, 4, 1, 10, tzinfo=UTC)
    assert Translator(mapping()).translate("crm", crm_record(level="X"), NOW).values["attributes.tier"] == "basic"


@pytest.mark.parametrize(
    ("record", "field", "words"),
    [
        (crm_record(contact={"emails": [{"not": "text"}]}), "emails", "expected text"),
        (crm_record(contact={"phones": [{"number": "12"}]}), "phones", "phone"),
        (crm_record(dob="1980/02/03"), "attributes.birthDate", "does not match format"),
        (crm_record(points="many"), "attributes.points", "could not convert"),
    ],
)
def test_a_value_that_does_not_fit_is_named_with_system_and_field(record, field, words):
    frag = Translator(mapping()).translate("crm", record, NOW)
    assert field not in frag.values
    assert [(p.system, p.field) for p in frag.problems] == [("crm", field)]
    assert words in frag.problems[0].message
    # The rest of the record still arrives.
    assert frag.values["name"] == "Anna de Vries"


def test_lists_segments_and_free_attributes_from_another_system():
    frag = Translator(mapping()).translate(
        "loyalty",
        {"fullName": "A. de Vries", "cards": [{"type": "gold"}, {"type": "travel"}],
         "extra": {"club": "Orange", "since": 2015, "nested": {"no": 1}},
         "segs": [{"id": "vip", "name": "VIP"}, "young"], "changedAt": "2026-04-20T08:00:00Z"},
        NOW,
    )
    assert frag.values["products"] == ["GOLD", "TRAVEL"]
    assert frag.values["attributes.club"] == "Orange" and frag.values["attributes.since"] == 2015
    assert [(p.field, p.system) for p in frag.problems] == [("attributes.nested", "loyalty")]
    assert [s.id for s in frag.values["segments"]] == ["vip", "young"]


def test_survivorship_ranked_list_then_mapping_order_with_lineage():
    t = Translator(mapping())
    crm = t.translate("crm", crm_record(), NOW)
    loyalty = t.translate("loyalty", {"fullName": "A. de Vries", "extra": {"tier": "platinum"}},
                          NOW + timedelta(seconds=1))
    view = t.merge("cus_1", [crm, loyalty])
    assert view.name == "A. de Vries"  # survivorship: name -> [loyalty, crm]
    assert view.emails == ["anna@example.com"]  # only the CRM has it
    assert view.attributes["tier"] == "gold"  # no rule for attributes: mapping order, crm first
    sources = {s.field: (s.system, s.fetched_at) for s in view.sources}
    assert sources["name"] == ("loyalty", NOW + timedelta(seconds=1))
    assert sources["emails"] == ("crm", NOW)
    assert sources["attributes.tier"] == ("crm", NOW)


def test_survivorship_newest_wins_by_the_records_update_time():
    m = mapping(BASE.replace("  name: [loyalty, crm]", "  name: newest"))
    t = Translator(m)
    older = t.translate("loyalty", {"fullName": "Old Name", "changedAt": "2026-01-01T00:00:00Z"}, NOW)
    newer = t.translate("crm", crm_record(modified="2026-03-01T00:00:00Z"), NOW)
    assert t.merge("c", [older, newer]).name == "Anna de Vries"
    newest = t.translate("loyalty", {"fullName": "New Name", "changedAt": "2026-04-01T00:00:00Z"}, NOW)
    assert t.merge("c", [newest, newer]).name == "New Name"


@pytest.mark.parametrize(
    ("text", "where", "words"),
    [
        ("      name: {path: a..b}", "systems.crm.profile.name.path", "not a path"),
        ("      name: {path: a, transform: [shout]}", "systems.crm.profile.name.transform", "unknown transform"),
        ("      name: {path: a, transform: [{date: 5}]}", "systems.crm.profile.name.transform", "date"),
        ("      name: {path: a, template: '{b}'}", "systems.crm.profile.name", "exactly one of path or template"),
        ("      name: {path: a, transfrom: [lower]}", "systems.crm.profile.name.transfrom", "Extra inputs"),
    ],
)
def test_bad_field_maps_name_file_line_and_field(text, where, words):
    doc = BASE.replace(
        '      name: {template: "{first} {last}", transform: [trim]}', text
    )
    with pytest.raises(MappingError) as info:
        mapping(doc)
    line = doc.splitlines().index(text) + 1
    assert any(
        p.line == line and p.field.startswith(where) and words in p.message for p in info.value.problems
    ), info.value.problems
