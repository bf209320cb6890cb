"""Marketing data made through the hub's own API, for the report tests (GraphQL, CSV, the /ops page in a
real browser): contacts in two channels with propositions shown and responses, requests, and a campaign.
Returns what was recorded, so a test can hold the reports to it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tests.support import RECORD, gql, start_contact

SUBMIT = "mutation($input: SubmitRequestInput!) { submitRequest(input: $input) { id status } }"
LAUNCH = """mutation($input: LaunchCampaignInput!) {
  launchCampaign(input: $input) { id stats { planned sent responded accepted } leads { id channel } }
}"""
CAMPAIGN = "query($id: ID!) { campaign(id: $id) { id stats { planned sent responded accepted } } }"

# (channel, customer email, [(event type, offer, response)])
SCRIPT: list[tuple[str, str, list[tuple[str, str, str | None]]]] = [
    ("WEBSITE", "ada.funnel@example.com", [
        ("PROPOSITION_SHOWN", "savings-plus", None), ("PROPOSITION_RESPONSE", "savings-plus", "ACCEPTED"),
        ("PROPOSITION_SHOWN", "gold-credit-card", None),
    ]),
    ("WEBSITE", "bert.funnel@example.com", [
        ("PROPOSITION_SHOWN", "savings-plus", None), ("PROPOSITION_RESPONSE", "savings-plus", "REJECTED"),
        ("PROPOSITION_SHOWN", "gold-credit-card", None), ("PROPOSITION_RESPONSE", "gold-credit-card", "LATER"),
    ]),
    ("WEBSITE", "cleo.funnel@example.com", [("PROPOSITION_SHOWN", "savings-plus", None)]),
    ("CALLCENTER", "dirk.funnel@example.com", [
        ("PROPOSITION_SHOWN", "savings-plus", None), ("PROPOSITION_RESPONSE", "savings-plus", "ACCEPTED"),
        ("BANNER_CLICK", "savings-plus", None),
    ]),
]


@dataclass
class Recorded:
    # (offer, channel) -> {"shown", "responded", "accepted", "rejected"}
    funnel: dict[tuple[str, str], Counter[str]] = field(default_factory=dict)
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)  # (kind, status) -> count
    customers: list[str] = field(default_factory=list)
    campaign_id: str | None = None
    campaign: dict[str, Any] = field(default_factory=dict)  # its stats as `campaign(id)` tells them


def expected_funnel(recorded: Recorded) -> dict[tuple[str, str], dict[str, int]]:
    return {k: {n: v[n] for n in ("shown", "responded", "accepted", "rejected")} for k, v in recorded.funnel.items()}


async def make_marketing_data(client, hub, *, campaign_offer: str = "savings-plus") -> Recorded:
    recorded = Recorded()
    for channel, email, events in SCRIPT:
        started = await start_contact(client, channel, email=email)
        recorded.customers.append(started["customer"]["id"])
        contact_id = started["contact"]["id"]
        payload = []
        for kind, offer, response in events:
            event: dict[str, Any] = {"type": kind, "offerId": offer}
            if response:
                event["response"] = response
            payload.append(event)
            counts = recorded.funnel.setdefault((offer, channel), Counter())
            if kind == "PROPOSITION_SHOWN":
                counts["shown"] += 1
            elif kind == "PROPOSITION_RESPONSE":
                counts["responded"] += 1
                counts[response.lower()] += 1 if response in ("ACCEPTED", "REJECTED") else 0
        await gql(client, RECORD, {"contactId": contact_id, "events": payload})
        if channel == "WEBSITE":
            made = await gql(client, SUBMIT, {"input": {"contactId": contact_id, "kind": "QUOTE", "subject": "A quote"}})
            recorded.requests[("QUOTE", made["submitRequest"]["status"])] += 1
    for counts in recorded.funnel.values():
        for name in ("shown", "responded", "accepted", "rejected"):
            counts.setdefault(name, 0)
    launched = (await gql(client, LAUNCH, {"input": {
        "offerId": campaign_offer, "customerIds": recorded.customers, "channels": ["EMAIL", "PRINT"],
    }}))["launchCampaign"]
    recorded.campaign_id = launched["id"]
    await hub.settle()
    recorded.campaign = (await gql(client, CAMPAIGN, {"id": launched["id"]}))["campaign"]["stats"]
    return recorded
