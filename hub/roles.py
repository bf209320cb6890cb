"""Roles: which part of the contact scenario a system plays, the port it needs, and how many may play it.

The mapping, the registry and the runtime read this table instead of naming roles themselves: a new
role is one entry here (and, for a new port, one protocol in hub.ports).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from hub.ports import (
    BackOffice,
    CampaignPlanner,
    ConsentRegistry,
    ContactRegistry,
    DecisionEngine,
    EventConsumer,
    LeadManager,
    OutboundChannel,
    PrivacyHandler,
    ProfileSource,
    RequestRegistry,
)


class Implied(enum.StrEnum):
    """Roles a system takes by what the mapping says of it, without naming it under `roles:`."""

    PROFILE = "profile"  # every system with a `profile:` field map
    FLOWS = "flows"  # every destination of a flow
    # Every system whose adapter has the role's port (and whose config serves it), unless `roles:` names
    # the players; a role for one system then needs exactly one such system, or a name under `roles:`.
    PORT = "port"


@dataclass(frozen=True, slots=True)
class Role:
    name: str
    port: type
    many: bool  # any number of systems, or at most one
    required: bool  # the hub cannot serve the scenario without it
    summary: str
    implied_by: Implied | None = None


CONTACT_REGISTRY = "contact_registry"
DECISION_ENGINE = "decision_engine"
LEAD_MANAGER = "lead_manager"
PROFILE_SOURCE = "profile_source"
OUTBOUND_CHANNEL = "outbound_channel"
EVENT_DESTINATION = "event_destination"
REQUEST_REGISTRY = "request_registry"
BACK_OFFICE = "back_office"
CAMPAIGN_PLANNER = "campaign_planner"
PRIVACY_HANDLER = "privacy_handler"
CONSENT_REGISTRY = "consent_registry"

ROLES: dict[str, Role] = {
    r.name: r
    for r in (
        Role(CONTACT_REGISTRY, ContactRegistry, many=False, required=True,
             summary="the CRM: told about customers and contacts, owns master data"),
        Role(REQUEST_REGISTRY, RequestRegistry, many=False, required=False,
             summary="the CRM's customer requests and their status history"),
        Role(BACK_OFFICE, BackOffice, many=False, required=False,
             summary="handles customer requests, straight through where it can"),
        Role(DECISION_ENGINE, DecisionEngine, many=False, required=True,
             summary="CM: offers and next best actions"),
        Role(CAMPAIGN_PLANNER, CampaignPlanner, many=False, required=False,
             summary="CM's outbound campaigns: one lead per eligible customer"),
        Role(LEAD_MANAGER, LeadManager, many=False, required=False,
             summary="LM: plans outbound leads over the outbound channels"),
        Role(PROFILE_SOURCE, ProfileSource, many=True, required=False,
             summary="contributes fields to the customer view", implied_by=Implied.PROFILE),
        Role(OUTBOUND_CHANNEL, OutboundChannel, many=True, required=False,
             summary="delivers leads (email, print, call center)"),
        Role(EVENT_DESTINATION, EventConsumer, many=True, required=False,
             summary="receives events through flows", implied_by=Implied.FLOWS),
        Role(CONSENT_REGISTRY, ConsentRegistry, many=False, required=False,
             summary="keeps customers' consents (marketing, profiling) per channel: the CRM",
             implied_by=Implied.PORT),
        Role(PRIVACY_HANDLER, PrivacyHandler, many=True, required=False,
             summary="erases and exports a customer's data (GDPR); every other system answers "
             "NOT_SUPPORTED", implied_by=Implied.PORT),
    )
}
