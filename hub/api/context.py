"""Per-request context: the wiring the request started on, and the DataLoaders that batch its reads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from graphql import GraphQLError
from strawberry.dataloader import DataLoader

from hub import model
from hub.core.errors import BadInput, NotConfigured, SystemUnavailable
from hub.model import CustomerView, DecisionRequest, NextBestAction

if TYPE_CHECKING:
    from hub.core.leads import Campaigns, Responses
    from hub.core.requests import RequestService
    from hub.ports import LeadManager
    from hub.runtime import Hub, Wiring

MAX_NBA_LIMIT = 20
SYSTEM_DATA_INVALID = "SYSTEM_DATA_INVALID"


def check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_NBA_LIMIT:
        raise BadInput(f"limit must be between 1 and {MAX_NBA_LIMIT}", field="limit")


@dataclass
class Context:
    hub: Hub
    wiring: Wiring = field(init=False)
    customers: DataLoader[str, CustomerView | None] = field(init=False)
    contacts: DataLoader[str, list[model.Contact]] = field(init=False)
    nbas: DataLoader[DecisionRequest, list[NextBestAction]] = field(init=False)
    requests: DataLoader[str, list[model.CustomerRequest]] = field(init=False)  # by customer
    # Errors that go with partial data (a system could not be read); the PartialData extension adds
    # them to the response.
    partial: list[GraphQLError] = field(default_factory=list)

    def __post_init__(self) -> None:
        # The request keeps the wiring it started with, also across a mapping reload.
        self.wiring = self.hub.wiring
        # One batched fetch per system for all customers a request touches, and one decision call
        # for all the NBAs it asks for.
        self.customers = DataLoader(load_fn=self.wiring.views.load_many)
        self.contacts = DataLoader(load_fn=self.wiring.views.contacts_of)
        self.nbas = DataLoader(load_fn=self._decide)
        self.requests = DataLoader(load_fn=self._requests_of)

    def request_service(self) -> RequestService:
        service = self.wiring.requests
        if service is None:
            raise NotConfigured("no system plays request_registry in the mapping: requests are off")
        return service

    def campaigns(self) -> Campaigns:
        if self.wiring.campaigns is None:
            raise NotConfigured("no systems play campaign_planner and lead_manager: campaigns are off")
        return self.wiring.campaigns

    def responses(self) -> Responses:
        if self.wiring.responses is None:
            raise NotConfigured("no system plays lead_manager in the mapping: leads are off")
        return self.wiring.responses

    def lead_manager(self) -> LeadManager:
        if self.wiring.outbound is None:
            raise NotConfigured("no system plays lead_manager in the mapping: leads are off")
        return self.wiring.outbound.lm

    async def _requests_of(self, customer_ids: Sequence[str]) -> list[list[model.CustomerRequest]]:
        found = await self.request_service().of_customers(customer_ids)
        return [list(found.get(cid, ())) for cid in customer_ids]

    async def _decide(
        self, requests: Sequence[DecisionRequest]
    ) -> list[list[NextBestAction] | BaseException]:
        try:
            return list(await self.wiring.decisions.decide(list(requests)))
        except SystemUnavailable as exc:
            return [exc for _ in requests]

    async def customer(self, customer_id: str, path: list[str | int]) -> CustomerView | None:
        view = await self.customers.load(customer_id)
        if view is None:
            return None
        for system, reason in sorted(view.unavailable.items()):
            self.partial.append(
                GraphQLError(
                    f"system {system!r} is unavailable; the customer view is partial ({reason})",
                    path=path,
                    extensions={"code": SystemUnavailable.code, "system": system},
                )
            )
        for problem in view.problems:
            self.partial.append(
                GraphQLError(
                    f"system {problem.system!r} gave a value for {problem.field!r} that does not fit: "
                    f"{problem.message}",
                    path=path,
                    extensions={
                        "code": SYSTEM_DATA_INVALID,
                        "system": problem.system,
                        "field": problem.field,
                    },
                )
            )
        return view

    async def next_best_actions(
        self, request: DecisionRequest, path: list[str | int]
    ) -> list[NextBestAction]:
        """NBAs; when CM cannot answer, the default actions (marked fallback, maybe none) plus a
        SYSTEM_UNAVAILABLE error beside the data."""
        try:
            return await self.nbas.load(request)
        except SystemUnavailable as exc:
            self.unavailable(exc, path)
            return self.wiring.decisions.fallback(request)

    def unavailable(self, exc: SystemUnavailable, path: list[str | int]) -> None:
        self.partial.append(GraphQLError(exc.message, path=path, extensions=exc.extensions))
