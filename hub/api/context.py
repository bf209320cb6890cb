"""Per-request context: the wiring the request started on, and the DataLoaders that batch its reads."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from graphql import GraphQLError
from strawberry.dataloader import DataLoader

from hub import model
from hub.core.errors import BadInput, Forbidden, NotConfigured, SystemUnavailable, TooManySubscriptions
from hub.model import Channel, CustomerView, DecisionRequest, NextBestAction
from hub.model.privacy import Consent
from hub.security.gate import credential
from hub.security.principal import Principal

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
    principal: Principal  # who calls (hub.security); on a websocket, set by its connection_init
    wiring: Wiring = field(init=False)
    # The HTTP request or websocket the operation came on; the websocket's connection_init payload.
    connection: Any = None
    connection_params: Any = None
    # Errors that go with partial data (a system could not be read); hub.api.extensions.partial_data
    # adds them to the response.
    partial: list[GraphQLError] = field(default_factory=list)

    def __post_init__(self) -> None:
        # The request keeps the wiring it started with, also across a mapping reload.
        self.wiring = self.hub.wiring

    # One batched fetch per system for all customers a request touches, and one decision call for all
    # the NBAs it asks for. Each loader is made on first use: most operations need one or none.
    @cached_property
    def customers(self) -> DataLoader[str, CustomerView | None]:
        return DataLoader(load_fn=self.wiring.views.load_many)

    @cached_property
    def contacts(self) -> DataLoader[str, list[model.Contact]]:
        return DataLoader(load_fn=self.wiring.views.contacts_of)

    @cached_property
    def nbas(self) -> DataLoader[DecisionRequest, list[NextBestAction]]:
        return DataLoader(load_fn=self.wiring.decisions.decide_each)

    @cached_property
    def requests(self) -> DataLoader[str, list[model.CustomerRequest]]:  # by customer
        return DataLoader(load_fn=self._requests_of)

    @cached_property
    def consents(self) -> DataLoader[str, list[Consent]]:  # by customer (hub.api.privacy)
        return DataLoader(load_fn=self._consents_of)

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

    async def _consents_of(self, customer_ids: Sequence[str]) -> list[list[Consent]]:
        service = self.wiring.consents
        return [[] for _ in customer_ids] if service is None else await service.of(customer_ids)

    async def _requests_of(self, customer_ids: Sequence[str]) -> list[list[model.CustomerRequest]]:
        found = await self.request_service().of_customers(customer_ids)
        return [list(found.get(cid, ())) for cid in customer_ids]

    async def customer(
        self, customer_id: str, path: list[str | int], *, together: bool = False
    ) -> CustomerView | None:
        """The customer's view (partial data said beside it). `together`: batched with other requests'
        (hub.core.coalesce: for answers that are never kept)."""
        loader = self.wiring.started_views if together else self.customers
        view = await loader.load(customer_id)
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
        self, request: DecisionRequest, path: list[str | int], *, together: bool = False
    ) -> list[NextBestAction]:
        """NBAs; when CM cannot answer, the default actions (marked fallback, maybe none) plus a
        SYSTEM_UNAVAILABLE error beside the data. `together`: as for `customer`."""
        try:
            return await (self.wiring.started_nbas if together else self.nbas).load(request)
        except SystemUnavailable as exc:
            self.unavailable(exc, path)
            return self.wiring.decisions.fallback(request)

    def forbidden(self, message: str, scope: str, path: list[str | int]) -> None:
        """A part of the answer left out for want of a scope, said beside the data."""
        extensions = {"code": Forbidden.code, "scope": scope}
        self.partial.append(GraphQLError(message, path=path, extensions=extensions))

    def act_as(self, channel: Channel | None) -> None:
        """A caller bound to a channel acts only as that channel."""
        bound = self.principal.channel
        if bound is not None and channel is not bound:
            asked = channel.value if channel else "no channel"
            raise Forbidden(f"this credential acts only as {bound.value}, not {asked}", channel=bound.value)

    async def act_on_contact(self, contact_id: str) -> None:
        """A caller bound to a channel acts only on that channel's contacts (an unknown contact is left
        to the operation, which says so)."""
        if self.principal.channel is None or not 0 < len(contact_id) <= 40:
            return
        contact = await self.wiring.contacts.get(None, contact_id)
        if contact is not None:
            self.act_as(contact.channel)

    @contextlib.asynccontextmanager
    async def subscription_slot(self) -> AsyncIterator[None]:
        """One of the subscriptions a credential may hold open (HUB_MAX_SUBSCRIPTIONS_PER_CREDENTIAL)."""
        security = self.hub.security
        client = getattr(getattr(self.connection, "client", None), "host", None)
        who = credential(self.principal, client)
        if security.subscriptions[who] >= security.max_subscriptions:
            raise TooManySubscriptions(
                f"this credential holds {security.max_subscriptions} subscriptions already"
            )
        security.subscriptions[who] += 1
        try:
            yield
        finally:
            security.subscriptions[who] -= 1
            if security.subscriptions[who] <= 0:
                del security.subscriptions[who]

    def unavailable(self, exc: SystemUnavailable, path: list[str | int]) -> None:
        self.partial.append(GraphQLError(exc.message, path=path, extensions=exc.extensions))
