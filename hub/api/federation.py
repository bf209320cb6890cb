"""The hub as an Apollo Federation 2 subgraph: `_service { sdl }` and `_entities`, with
`Customer @key(fields: "id")`, so a company adds the hub to its supergraph (Apollo Router, Hive Gateway,
Cosmo) and other subgraphs extend the customer with their own fields.

Both root fields are the hub's own (strawberry's federation schema uses a query type's own `_service` and
`_entities` when it has them), so they carry the hub's rules like every other root field
(hub.security.scopes.RULES, enforced by hub.api.guard):

- `_entities` reads customers: it needs `customer:read`, as `Query.customer` does, and the personal fields
  of the customers it returns keep their own rule (`customer:read:pii`). A representation that is not
  `{"__typename": "Customer", "id": "<string>"}` is the caller's mistake (BAD_USER_INPUT, naming its
  index); an unknown id is null, as `Query.customer` answers it.
- `_service` needs an authenticated caller and no scope (`@authenticated`): the SDL says nothing that
  introspection, open to every authenticated caller, does not (the scope rules in it are published in
  schema/schema.graphql), and the tools that fetch it (rover, Hive and Cosmo CLIs) run with a deploy
  credential that should not need to read customers.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final, Literal

import strawberry
from strawberry.annotation import StrawberryAnnotation
from strawberry.federation.schema import FederationAny
from strawberry.federation.schema_directives import Key
from strawberry.types import Info
from strawberry.types.union import StrawberryUnion

from hub.api.context import Context
from hub.api.errors import HubSchema
from hub.api.inputs import MAX_ID
from hub.api.types import Customer
from hub.core.errors import BadInput

# @authenticated and @requiresScopes came with 2.5; 2.7 is what today's routers and composition take.
FEDERATION_VERSION: Final[Literal["2.7"]] = "2.7"
MAX_REPRESENTATIONS = 100  # as many as Query.customers takes in one call
ENTITY_KEYS = {"Customer": "id"}


class FederatedSchema(HubSchema, strawberry.federation.Schema):
    """The hub's schema (its error handling) as a Federation 2 subgraph."""

    def __init__(self, **options: Any):
        super().__init__(federation_version=FEDERATION_VERSION, **options)


@strawberry.type(name="_Service")
class Service:
    sdl: str


async def _customer(info: Info[Context, None], representation: dict[str, Any]) -> Customer | None:
    view = await info.context.customer(representation["id"], info.path.as_list())
    return Customer.of(view) if view else None


def _checked(representations: list[Any]) -> list[dict[str, Any]]:
    if len(representations) > MAX_REPRESENTATIONS:
        raise BadInput(f"at most {MAX_REPRESENTATIONS} representations per call", field="representations")
    for index, given in enumerate(representations):
        typename = given.get("__typename") if isinstance(given, dict) else None
        key = ENTITY_KEYS.get(typename) if isinstance(typename, str) else None
        if key is None or not isinstance(given.get(key), str) or not 0 < len(given[key]) <= MAX_ID:
            known = ", ".join(f'{{"__typename": "{t}", "{k}": "…"}}' for t, k in ENTITY_KEYS.items())
            raise BadInput(
                f"representations[{index}] must be one of {known}", field=f"representations.{index}"
            )
    return representations


def query(base: type) -> type:
    """The hub's Query with the subgraph's two root fields."""
    entity = StrawberryUnion("_Entity", type_annotations=(StrawberryAnnotation(Customer),))

    async def entities(info: Info[Context, None], representations: list[FederationAny]) -> list[Any]:
        checked = _checked(list(representations))
        # Concurrently, so the customers are read in one DataLoader batch (one call per system).
        return list(await asyncio.gather(*(_customer(info, r) for r in checked)))

    entities.__annotations__["return"] = list[entity | None]  # type: ignore[operator,valid-type]

    def service(info: Info[Context, None]) -> Service:
        return Service(sdl=info.schema.as_str())

    fields = {
        "entities": strawberry.field(
            name="_entities",
            resolver=entities,
            description="Federation: the entities of these representations, in their order (null where "
            "unknown).",
        ),
        "service": strawberry.field(
            name="_service", resolver=service, description="Federation: this subgraph's SDL."
        ),
    }
    definition = base.__strawberry_definition__  # type: ignore[attr-defined]
    return strawberry.type(type("Query", (base,), fields), name="Query", description=definition.description)


def declare_entities() -> None:
    """`@key` on each entity type (once, before the schema is built), and how `_entities` finds it."""
    definition = Customer.__strawberry_definition__  # type: ignore[attr-defined]
    if not any(isinstance(d, Key) for d in definition.directives or ()):
        definition.directives = [*(definition.directives or ()), Key(fields="id")]  # type: ignore[arg-type]


declare_entities()
