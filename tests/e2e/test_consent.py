"""Consent per purpose and channel: given or withdrawn through `setConsent` or the unsubscribe link,
kept by the consent registry (the built-in CRM), shown in the view, and respected by CM's next best
actions and campaign planning and by LM's sending, whose explanations (the NBA's reason, the lead's
detail) say so. Runs on both stacks (SQLite + in-process bus; PostgreSQL + RabbitMQ)."""

from __future__ import annotations

import shutil
from typing import Any

import pytest
import yaml
from aiosmtpd.controller import Controller

from hub.config import SHIPPED_MAPPINGS
from hub.model import Key, KeyKind
from tests.e2e.test_outbound import Mailbox, free_port
from tests.support import RECORD, codes, eventually, gql

CONSENTS = "consents { purpose channel granted source at }"
SET = f"""mutation($id: ID!, $purpose: ConsentPurpose!, $channel: Channel, $granted: Boolean!) {{
  setConsent(customerId: $id, purpose: $purpose, channel: $channel, granted: $granted) {{ id {CONSENTS} }} }}"""
VIEW = f"""query($id: ID!, $channel: Channel) {{ customer(id: $id) {{
  {CONSENTS} nextBestActions(channel: $channel, limit: 5) {{ offerId channel reason }} }} }}"""
LAUNCH = """mutation($input: LaunchCampaignInput!) { launchCampaign(input: $input) {
  id leads { id code channel status customer { id } } } }"""
LEAD = "query($id: ID!) { lead(id: $id) { id status detail channel } }"
EXPORT = "mutation($id: ID!) { exportCustomer(id: $id) { id } }"
ERASE = "mutation($id: ID!) { eraseCustomer(id: $id) { id } }"
GET = "query($id: ID!) { privacyRequest(id: $id) { status download } }"


@pytest.fixture
def mailbox():
    box = Mailbox()
    box.port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


@pytest.fixture
def hub_settings(hub_settings, mailbox, tmp_path):
    folder = tmp_path / "mappings"
    shutil.copytree(SHIPPED_MAPPINGS, folder)
    hub_yaml = folder / "hub.yaml"
    data = yaml.safe_load(hub_yaml.read_text())
    data["systems"]["print"]["config"]["folder"] = str(tmp_path / "print")
    hub_yaml.write_text(yaml.safe_dump(data, sort_keys=False))
    # The dispatcher's own rounds are an hour apart: the tests run them.
    return hub_settings.model_copy(update={
        "smtp_port": mailbox.port, "mappings_dir": folder, "outbound_interval_seconds": 3600,
        "public_url": "https://hub.example",
    })


async def customer(hub, name: str, **attributes: Any) -> str:
    mail = f"{name.lower().replace(' ', '.')}@example.com"
    made = await hub.contacts.import_customer([Key(KeyKind.EMAIL, mail)], name, attributes)
    assert made is not None
    return made


async def consent(client, customer_id: str, purpose: str, channel: str | None, granted: bool) -> list[dict]:
    data = await gql(client, SET, {"id": customer_id, "purpose": purpose, "channel": channel, "granted": granted})
    return data["setConsent"]["consents"]


async def view(client, customer_id: str, channel: str | None) -> dict[str, Any]:
    return (await gql(client, VIEW, {"id": customer_id, "channel": channel}))["customer"]


def offered(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n["offerId"]: n for n in view["nextBestActions"]}


async def test_consent_is_in_the_view_and_next_best_actions_respect_it(client, hub):
    cid = await customer(hub, "Constance Consent")
    await hub.settle()
    before = await view(client, cid, "EMAIL")
    assert before["consents"] == [] and "savings-plus" in offered(before)  # nothing recorded: allowed

    shown = await consent(client, cid, "MARKETING", "EMAIL", False)
    assert [(c["purpose"], c["channel"], c["granted"], c["source"]) for c in shown] == [
        ("MARKETING", "EMAIL", False, "api")]
    await hub.settle()  # CM hears of it (customer.consent, flow customers-to-cm)
    assert (await view(client, cid, "EMAIL"))["nextBestActions"] == []  # no offers by email
    assert "savings-plus" in offered(await view(client, cid, "WEBSITE"))  # other channels as before

    # Any channel: each offer goes by a channel consent allows, and the reason says which were skipped.
    await consent(client, cid, "MARKETING", "WEBSITE", False)
    await hub.settle()
    anywhere = offered(await view(client, cid, None))
    assert anywhere["savings-plus"]["channel"] == "CALLCENTER"
    assert "no marketing consent by WEBSITE, EMAIL: offered by CALLCENTER" in anywhere["savings-plus"]["reason"]
    assert all(n["channel"] not in ("WEBSITE", "EMAIL") for n in anywhere.values())

    # Profiling withdrawn: the customer's shown interest is not used, and the reason says so.
    contact = (await gql(client, """mutation($input: StartContactInput!) { startContact(input: $input) {
      contact { id } } }""", {"input": {"channel": "SHOP", "identification": {
        "email": "constance.consent@example.com"}}}))["startContact"]["contact"]["id"]
    await gql(client, RECORD, {"contactId": contact, "events": [{"type": "INTEREST_SHOWN", "topic": "savings"}]})
    await hub.settle()
    assert "interest in savings" in offered(await view(client, cid, "SHOP"))["savings-plus"]["reason"]
    await consent(client, cid, "PROFILING", None, False)
    await hub.settle()
    reason = offered(await view(client, cid, "SHOP"))["savings-plus"]["reason"]
    assert "no profiling consent in any channel: interest not used" in reason and "interest in" not in reason

    # The newest statement covering a channel decides: consent to marketing everywhere brings email back.
    await consent(client, cid, "MARKETING", None, True)
    await hub.settle()
    assert "savings-plus" in offered(await view(client, cid, "EMAIL"))
    consents = {(c["purpose"], c["channel"]): c["granted"] for c in (await view(client, cid, None))["consents"]}
    assert consents == {("MARKETING", None): True, ("MARKETING", "EMAIL"): False,
                        ("MARKETING", "WEBSITE"): False, ("PROFILING", None): False}

    body = await gql(client, SET, {"id": "cus_00000000000000000000", "purpose": "MARKETING", "channel": None,
                                   "granted": False}, ok=False)
    assert codes(body) == ["NOT_FOUND"]


async def test_outbound_leads_respect_consent_when_planned_and_when_sent(client, hub, mailbox):
    olga = await customer(hub, "Open Olga")
    erik = await customer(hub, "Emailless Erik")
    nina = await customer(hub, "Nothing Nina")
    late = await customer(hub, "Late Lotte")
    await hub.settle()
    await consent(client, erik, "MARKETING", "EMAIL", False)
    await consent(client, nina, "MARKETING", None, False)
    await hub.settle()

    campaign = (await gql(client, LAUNCH, {"input": {"offerId": "savings-plus", "channels": ["EMAIL", "PRINT"],
                                                     "customerIds": [olga, erik, nina, late]}}))["launchCampaign"]
    channels = {lead["customer"]["id"]: lead["channel"] for lead in campaign["leads"]}
    assert channels == {olga: "EMAIL", erik: "PRINT", late: "EMAIL"}  # Nina: no marketing at all, no lead

    # Lotte withdraws email marketing after her lead was planned: LM does not send it.
    await hub.settle()  # the leads reach LM
    await consent(client, late, "MARKETING", "EMAIL", False)
    await hub.settle()  # and so does her consent (flow consents-to-lm)
    await hub.dispatcher.run_once()
    leads = {lead["customer"]["id"]: lead["id"] for lead in campaign["leads"]}
    lotte = (await gql(client, LEAD, {"id": leads[late]}))["lead"]
    assert (lotte["status"], lotte["detail"]) == ("FAILED", "no marketing consent by EMAIL")
    assert (await gql(client, LEAD, {"id": leads[olga]}))["lead"]["status"] == "SENT"
    assert [m["To"] for m in mailbox.messages] == ["Open Olga <open.olga@example.com>"]


async def test_the_unsubscribe_link_withdraws_marketing_consent(client, hub, mailbox):
    ulla = await customer(hub, "Unsubscribing Ulla")
    await hub.settle()
    first = (await gql(client, LAUNCH, {"input": {"offerId": "savings-plus", "channels": ["EMAIL"],
                                                  "customerIds": [ulla]}}))["launchCampaign"]
    await hub.settle()
    await hub.dispatcher.run_once()
    assert len(mailbox.messages) == 1
    assert (await client.get(f"/u/{first['leads'][0]['code']}")).status_code == 200

    shown = (await view(client, ulla, "EMAIL"))["consents"]
    assert [(c["purpose"], c["channel"], c["granted"], c["source"]) for c in shown] == [
        ("MARKETING", "EMAIL", False, "unsubscribe")]
    await hub.settle()
    assert (await view(client, ulla, "EMAIL"))["nextBestActions"] == []
    again = (await gql(client, LAUNCH, {"input": {"offerId": "savings-plus", "channels": ["EMAIL", "PRINT"],
                                                  "customerIds": [ulla]}}))["launchCampaign"]
    assert [lead["channel"] for lead in again["leads"]] == ["PRINT"]
    # The same link again changes nothing.
    assert (await client.post(f"/u/{first['leads'][0]['code']}")).status_code == 200
    assert len((await view(client, ulla, None))["consents"]) == 1


async def test_consents_are_exported_and_erased_with_the_customer(client, hub):
    cid = await customer(hub, "Exported Emma")
    await consent(client, cid, "PROFILING", "WEBSITE", False)
    await hub.settle()
    made = (await gql(client, EXPORT, {"id": cid}))["exportCustomer"]
    document = (await settled(client, made["id"]))["download"]
    assert [(c["purpose"], c["channel"], c["granted"], c["source"])
            for c in document["systems"]["crm"]["consents"]] == [("PROFILING", "WEBSITE", False, "api")]
    assert document["systems"]["cm"]["consents"]["PROFILING:WEBSITE"]["granted"] is False  # CM's copy

    erased = (await gql(client, ERASE, {"id": cid}))["eraseCustomer"]
    await settled(client, erased["id"])
    assert await hub.wiring.consents.of([cid]) == [[]]


async def settled(client, request_id: str) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        found = (await gql(client, GET, {"id": request_id}))["privacyRequest"]
        return found if found["status"] == "DONE" else None

    return await eventually(done, timeout=30, interval=0.05)
