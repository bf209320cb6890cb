"""Per-request context: the hub and the DataLoaders that batch reads within one request."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from graphql import GraphQLError
from strawberry.dataloader import DataLoader
from strawberry.extensions import SchemaExtension

from hub.core.errors import BadInput, SystemUnavailable
from hub.core.model import CustomerView

if TYPE_CHECKING:
    from hub.runtime import Hub

MAX_NBA_LIMIT = 20


def check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_NBA_LIMIT:
        raise BadInput(f"limit must be between 1 and {MAX_NBA_LIMIT}", field="limit")


@dataclass
class Context:
    hub: Hub
    customers: DataLoader[str, CustomerView | None] = field(init=False)
    # Errors that go with partial data (a system could not be read); the PartialData extension adds
    # them to the response.
    partial: list[GraphQLError] = field(default_factory=list)

    def __post_init__(self) -> None:
        # One batched fetch per system for all customers a request touches.
        self.customers = DataLoader(load_fn=self.hub.views.load_many)

    async def customer(self, customer_id: str, path: list[str | int]) -> CustomerView | None:
        view = await self.customers.load(customer_id)
        for system, reason in sorted((view.unavailable if view else {}).items()):
            self.partial.append(
                GraphQLError(
                    f"system {system!r} is unavailable; the customer view is partial ({reason})",
                    path=path,
                    extensions={"code": SystemUnavailable.code, "system": system},
                )
            )
        return view


class PartialData(SchemaExtension):
    """Puts the errors of partial data into the response, beside the data that could be read."""

    def on_execute(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        context = self.execution_context.context
        if result is not None and isinstance(context, Context) and context.partial:
            result.errors = [*(result.errors or []), *context.partial]
