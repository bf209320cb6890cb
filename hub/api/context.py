"""Per-request context: the hub and the DataLoaders that batch reads within one request."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from strawberry.dataloader import DataLoader

from hub.core.errors import BadInput
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

    def __post_init__(self) -> None:
        # One batched fetch per system for all customers a request touches.
        self.customers = DataLoader(load_fn=self.hub.views.load_many)
