"""Each root field of the schema, called by a key that has every scope but the one its rule names, is
FORBIDDEN (naming the scope) and records nothing; with that scope it is not. The documents are made from
the schema itself, so a new field is covered the day it is added, and one without a rule fails. The
SDL's @requiresScopes and the enforcement are held to the same table."""

from __future__ import annotations

import json
from typing import Any

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
    GraphQLSchema,
    ObjectTypeDefinitionNode,
    get_named_type,
    is_leaf_type,
    parse,
)
from sqlalchemy import func, select

from hub.api.schema import schema as hub_schema
from hub.security.scopes import ALL_SCOPES, AUTHENTICATED, CUSTOMER_READ, CUSTOMER_READ_PII, RULES
from hub.store.tables import outbox
from tests.support import codes, gql, start_contact

GQL: GraphQLSchema = hub_schema._schema
ROOTS = [("query", GQL.query_type), ("mutation", GQL.mutation_type)]


def _sample(type_: Any) -> Any:
    """A value of an input type that passes validation (its meaning does not matter: the guard runs
    before the resolver)."""
    if isinstance(type_, GraphQLNonNull):
        return _sample(type_.of_type)
    if isinstance(type_, GraphQLList):
        return [_sample(type_.of_type)]
    if isinstance(type_, GraphQLEnumType):
        return next(iter(type_.values))
    if isinstance(type_, GraphQLInputObjectType):
        return {name: _sample(f.type) for name, f in type_.fields.items() if isinstance(f.type, GraphQLNonNull)}
    assert isinstance(type_, GraphQLScalarType)
    return {"Int": 1, "Float": 1.0, "Boolean": True, "DateTime": "2026-01-01T00:00:00+00:00",
            "JSON": {}}.get(type_.name, "x1")


def document(kind: str, name: str, field: Any) -> tuple[str, dict[str, Any]]:
    required = {a: arg for a, arg in field.args.items() if isinstance(arg.type, GraphQLNonNull)}
    params = ", ".join(f"${a}: {arg.type}" for a, arg in required.items())
    args = ", ".join(f"{a}: ${a}" for a in required)
    selection = "" if is_leaf_type(get_named_type(field.type)) else " { __typename }"
    text = f"{kind}{f'({params})' if params else ''} {{ {name}{f'({args})' if args else ''}{selection} }}"
    parse(text)
    return text, {a: _sample(arg.type) for a, arg in required.items()}


CASES = [
    pytest.param(kind, name, field, id=f"{root.name}.{name}")
    for kind, root in ROOTS
    if root is not None
    for name, field in root.fields.items()
    if RULES.get(f"{root.name}.{name}") != AUTHENTICATED  # no scope to leave out: see test_authenticated_only
]


def test_every_root_field_has_a_rule():
    roots = [GQL.query_type, GQL.mutation_type, GQL.subscription_type]
    missing = [f"{r.name}.{n}" for r in roots if r for n in r.fields if f"{r.name}.{n}" not in RULES]
    assert not missing, f"add a scope for these to hub.security.scopes.RULES: {missing}"


def test_the_sdl_shows_each_rule_and_nothing_else():
    """What the published SDL says a field needs is what the table (which the guard enforces) says."""
    declared: dict[str, str] = {}
    sdl = parse(hub_schema.as_str())
    (link,) = [d for s in sdl.definitions if s.kind == "schema_definition" for d in s.directives]
    imported = {v.value for a in link.arguments if a.name.value == "import" for v in a.value.values}
    assert {"@requiresScopes", "@authenticated"} <= imported  # federation's own, not a look-alike
    for definition in sdl.definitions:
        if not isinstance(definition, ObjectTypeDefinitionNode):
            continue
        for field in definition.fields or ():
            for directive in field.directives or ():
                if directive.name.value == "authenticated":
                    declared[f"{definition.name.value}.{field.name.value}"] = AUTHENTICATED
                if directive.name.value == "requiresScopes":
                    (argument,) = directive.arguments
                    sets = [[v.value for v in inner.values] for inner in argument.value.values]
                    assert len(sets) == 1 and len(sets[0]) == 1, sets
                    declared[f"{definition.name.value}.{field.name.value}"] = sets[0][0]
    in_schema = {c: s for c, s in RULES.items() if c.partition(".")[0] in GQL.type_map}
    assert declared == in_schema


async def test_authenticated_only_fields_answer_a_key_without_scopes(hub, new_key, caller, anonymous):
    """`@authenticated` fields (Query._service) need a key, any key (here one that may only move requests
    on): none is 401 at the edge."""
    fields = [c.partition(".")[2] for c, s in RULES.items() if s == AUTHENTICATED]
    assert fields == ["_service"]
    unrelated = await new_key("request:write")
    async with caller(unrelated) as client:
        data = await gql(client, "{ _service { sdl } }")
    assert "type Customer @key" in data["_service"]["sdl"]
    response = await anonymous.post("/graphql", json={"query": "{ _service { sdl } }"})
    assert response.status_code == 401


async def outbox_count(hub) -> int:
    async with hub.engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(outbox))).scalar_one()


@pytest.mark.parametrize(("kind", "name", "field"), CASES)
async def test_each_operation_needs_its_scope(hub, new_key, caller, kind, name, field):
    root = "Query" if kind == "query" else "Mutation"
    scope = RULES[f"{root}.{name}"]
    text, variables = document(kind, name, field)
    without = await new_key(ALL_SCOPES - {scope})
    await hub.settle()
    before = await outbox_count(hub)
    async with caller(without) as client:
        body = await gql(client, text, variables, ok=False)
    assert codes(body) == ["FORBIDDEN"], body
    assert scope in body["errors"][0]["message"] and name in body["errors"][0]["message"]
    assert body["errors"][0]["extensions"]["scope"] == scope
    assert await outbox_count(hub) == before  # nothing recorded

    with_scope = await new_key(frozenset({scope}))
    async with caller(with_scope) as client:
        body = await gql(client, text, variables, ok=False)
    assert "FORBIDDEN" not in codes(body), body


async def test_personal_data_needs_the_pii_scope(hub, new_key, caller):
    everything = await new_key()
    async with caller(everything) as client:
        started = await start_contact(client, email="pii@example.com", phone="+31612345678")
    customer_id = started["customer"]["id"]
    query = "query($id: ID!) { customer(id: $id) { id name emails phones addresses attributes } }"

    reader = await new_key(frozenset({CUSTOMER_READ}))
    async with caller(reader) as client:
        body = await gql(client, query, {"id": customer_id}, ok=False)
    customer = body["data"]["customer"]
    assert customer["id"] == customer_id
    assert customer["emails"] is None and customer["phones"] is None and customer["addresses"] is None
    forbidden = {e["path"][-1] for e in body["errors"] if e["extensions"]["code"] == "FORBIDDEN"}
    assert forbidden == {"emails", "phones", "addresses"}
    assert all(e["extensions"]["scope"] == CUSTOMER_READ_PII for e in body["errors"])

    pii = await new_key(frozenset({CUSTOMER_READ, CUSTOMER_READ_PII}))
    async with caller(pii) as client:
        data = await gql(client, query, {"id": customer_id})
    assert data["customer"]["emails"] == ["pii@example.com"]
    assert data["customer"]["phones"] == ["+31612345678"]


async def test_personal_attributes_are_left_out_without_the_pii_scope(hub, new_key, caller):
    await hub.contacts.import_customer(
        [__import__("hub.model", fromlist=["Key"]).Key("email", "addr@example.com")],
        "Addressed", {"address": "Keizersgracht 1", "tier": "gold"},
    )
    await hub.settle()
    query = '{ customerByKey(email: "addr@example.com") { attributes addresses } }'
    async with caller(await new_key(frozenset({CUSTOMER_READ}))) as client:
        body = await gql(client, query, ok=False)
    assert "address" not in body["data"]["customerByKey"]["attributes"]
    assert body["data"]["customerByKey"]["attributes"].get("tier") == "gold"
    assert "FORBIDDEN" in codes(body)
    async with caller(await new_key(frozenset({CUSTOMER_READ, CUSTOMER_READ_PII}))) as client:
        data = await gql(client, query)
    assert data["customerByKey"]["attributes"]["address"] == "Keizersgracht 1"
    assert data["customerByKey"]["addresses"] == ["Keizersgracht 1"]


async def test_a_channel_key_acts_only_as_its_channel(hub, new_key, caller):
    website = await new_key("contact:write,customer:read", channel="WEBSITE")
    callcenter = await new_key("contact:write,customer:read", channel="CALLCENTER")
    start = "mutation($c: Channel!) { startContact(input: {channel: $c, identification: {cookieId: \"ck-1\"}}) " \
            "{ contact { id } } }"
    async with caller(website) as client:
        body = await gql(client, start, {"c": "CALLCENTER"}, ok=False)
        assert codes(body) == ["FORBIDDEN"] and "WEBSITE" in body["errors"][0]["message"]
        assert (await gql(client, start, {"c": "WEBSITE"}))["startContact"]["contact"]["id"]
    async with caller(callcenter) as client:
        call = await gql(client, start, {"c": "CALLCENTER"})
    contact_id = call["startContact"]["contact"]["id"]
    await hub.settle()
    before = await outbox_count(hub)
    async with caller(website) as client:
        record = ("mutation($id: ID!) { recordContactEvents(contactId: $id, events: "
                  "[{type: INTEREST_SHOWN, topic: \"savings\"}]) { accepted } }")
        assert codes(await gql(client, record, {"id": contact_id}, ok=False)) == ["FORBIDDEN"]
        end = "mutation($id: ID!) { endContact(contactId: $id) { id } }"
        assert codes(await gql(client, end, {"id": contact_id}, ok=False)) == ["FORBIDDEN"]
    assert await outbox_count(hub) == before
    assert json.dumps(call)
