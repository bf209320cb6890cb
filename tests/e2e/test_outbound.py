"""Outbound (scenario step 5): CM plans a campaign's leads, LM sends them within each channel's capacity
(email over a real SMTP server, print files, the call center's list) with the address read at send time,
and a response through any channel reaches the lead once and CM once."""

from __future__ import annotations

import asyncio
import csv
import email
import shutil
import socket
from email.message import Message

import pytest
import yaml
from aiosmtpd.controller import Controller
from sqlalchemy import update

from hub.config import SHIPPED_MAPPINGS
from hub.demo import load_demo
from hub_adapters.crm.tables import crm_customers
from tests.support import codes, gql, start_contact

LEAD = "id code offerId channel status sentAt respondedAt response responseChannel decisionId detail"
LAUNCH = f"""mutation($input: LaunchCampaignInput!) {{ launchCampaign(input: $input) {{
  id offerId status channels leads {{ {LEAD} customer {{ id name }} }} stats {{ planned sent responded accepted }} }} }}"""
CAMPAIGN = f"""query($id: ID!) {{ campaign(id: $id) {{ id status leads {{ {LEAD} }}
  stats {{ planned sent responded accepted }} }} }}"""
GET_LEAD = f"query($id: ID!) {{ lead(id: $id) {{ {LEAD} }} }}"
RESPOND = f"""mutation($code: String!, $channel: Channel!, $response: PropositionResponse!) {{
  recordLeadResponse(code: $code, channel: $channel, response: $response) {{ {LEAD} }} }}"""
CALLBACKS = f"query($limit: Int) {{ callbacks(limit: $limit) {{ {LEAD} customer {{ name }} }} }}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Mailbox:
    """aiosmtpd handler: keeps what it receives."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.port = 0
        self.refuse: dict[str, str] = {}  # recipient -> the SMTP reply to RCPT TO

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.original_content))
        return "250 OK"


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
def mappings(tmp_path):
    folder = tmp_path / "mappings"
    shutil.copytree(SHIPPED_MAPPINGS, folder)
    hub_yaml = folder / "hub.yaml"
    data = yaml.safe_load(hub_yaml.read_text())
    data["systems"]["print"]["config"]["folder"] = str(tmp_path / "print")
    data["systems"]["lm"]["config"]["capacity"] = {"email_per_hour": 2, "print_per_day": 10,
                                                   "callcenter_per_day": 10}
    hub_yaml.write_text(yaml.safe_dump(data, sort_keys=False))
    return folder


@pytest.fixture
def hub_settings(hub_settings, mailbox, mappings):
    # The dispatcher's own rounds are an hour apart: the tests run them.
    return hub_settings.model_copy(update={
        "smtp_port": mailbox.port, "mappings_dir": mappings, "outbound_interval_seconds": 3600,
        "public_url": "https://hub.example",
    })


async def demo_ids(client, hub) -> dict[str, str]:
    await load_demo(hub)
    await hub.settle()  # CM learns the demo customers' attributes (age: the `adults` segment)
    ids = {}
    for mail in ("anna.devries@example.com", "bram.jansen@example.com", "eva.smit@example.net"):
        found = await gql(client, "query($e: String!) { customerByKey(email: $e) { id } }", {"e": mail})
        ids[mail] = found["customerByKey"]["id"]
    return ids


async def launch(client, **input) -> dict:
    return (await gql(client, LAUNCH, {"input": input}))["launchCampaign"]


async def test_an_email_campaign_within_capacity_and_its_response_link(client, hub, mailbox):
    ids = await demo_ids(client, hub)
    campaign = await launch(client, offerId="savings-plus", customerIds=list(ids.values()), channels=["EMAIL"])
    assert campaign["status"] == "PLANNED" and campaign["stats"] == {
        "planned": 3, "sent": 0, "responded": 0, "accepted": 0}
    leads = {lead["customer"]["id"]: lead for lead in campaign["leads"]}
    assert set(leads) == set(ids.values())
    assert all(lead["decisionId"] and lead["code"] for lead in leads.values())

    await hub.settle()  # lead.created -> LM
    # Capacity: two emails an hour. The third waits.
    assert await hub.dispatcher.run_once() == {"email": 2, "print": 0, "callcenter": 0}
    assert await hub.dispatcher.run_once() == {"email": 0, "print": 0, "callcenter": 0}
    assert len(mailbox.messages) == 2
    state = (await gql(client, CAMPAIGN, {"id": campaign["id"]}))["campaign"]
    assert state["stats"]["sent"] == 2 and state["status"] == "PLANNED"
    assert sorted(lead["status"] for lead in state["leads"]) == ["PLANNED", "SENT", "SENT"]

    sent = next(lead for lead in state["leads"] if lead["status"] == "SENT")
    mail = next(m for m in mailbox.messages if m["X-Hub-Lead"] == sent["code"])
    body = mail.get_body(("plain",)) if hasattr(mail, "get_body") else None
    text = str(mail) if body is None else body.get_content()
    assert f"https://hub.example/r/{sent['code']}" in str(mail)
    assert mail["List-Unsubscribe"] == f"<https://hub.example/u/{sent['code']}>"
    assert "Savings Plus" in mail["Subject"]
    assert text

    # The customer follows the link: recorded once, however often it is clicked, then CM learns it.
    for _ in range(2):
        r = await client.get(f"/r/{sent['code']}", follow_redirects=False)
        assert r.status_code == 303
        assert r.headers["location"].startswith("https://hub.example/thanks?offer=savings-plus&code=")
    lead = (await gql(client, GET_LEAD, {"id": sent["id"]}))["lead"]
    assert (lead["status"], lead["response"], lead["responseChannel"]) == ("RESPONDED", "ACCEPTED", "EMAIL")
    state = (await gql(client, CAMPAIGN, {"id": campaign["id"]}))["campaign"]
    assert state["stats"] == {"planned": 3, "sent": 2, "responded": 1, "accepted": 1}
    await hub.settle()
    customer = next(cid for cid, lead in leads.items() if lead["id"] == sent["id"])
    history = (await gql(client, "query($id: ID!) { customer(id: $id) { offerHistory { offerId accepted } } }",
                         {"id": customer}))["customer"]["offerHistory"]
    assert {h["offerId"]: h["accepted"] for h in history}.get("savings-plus") == 1

    assert (await client.get("/r/NOPE-NOPE", follow_redirects=False)).status_code == 404
    body = await gql(client, RESPOND, {"code": "NOPE-NOPE", "channel": "SHOP", "response": "ACCEPTED"}, ok=False)
    assert codes(body) == ["UNKNOWN_LEAD"]


async def test_letters_use_the_address_at_send_time(client, hub, tmp_path):
    ids = await demo_ids(client, hub)
    anna, bram = ids["anna.devries@example.com"], ids["bram.jansen@example.com"]
    campaign = await launch(client, offerId="savings-plus", customerIds=[anna, bram], channels=["PRINT"])
    await hub.settle()
    # Anna moves after the launch: the CRM has her new address when the letter is printed.
    async with hub.engine.begin() as tx:
        await tx.execute(update(crm_customers).where(crm_customers.c.id == anna).values(attributes={
            "tier": "gold", "age": 42, "address": "Prinsengracht 9\n1015 DT Amsterdam"}))
    assert (await hub.dispatcher.run_once())["print"] == 2
    files = list((tmp_path / "print").glob("*.csv"))
    assert len(files) == 1, "one print file per run"
    with files[0].open(newline="") as f:
        rows = {r["lead_code"]: r for r in csv.DictReader(f)}
    codes_by_customer = {lead["customer"]["id"]: lead["code"] for lead in campaign["leads"]}
    assert rows[codes_by_customer[anna]]["address"] == "Prinsengracht 9\n1015 DT Amsterdam"
    assert rows[codes_by_customer[bram]]["address"] == "Oudegracht 2\n3511 AA Utrecht"
    assert not list((tmp_path / "print").glob(".*")), "no temporary file left behind"


async def test_the_call_center_list_and_an_agents_answer(client, hub):
    ids = await demo_ids(client, hub)
    campaign = await launch(client, offerId="savings-plus", customerIds=[ids["bram.jansen@example.com"]],
                            channels=["CALLCENTER"])
    await hub.settle()
    await hub.dispatcher.run_once()
    (lead,) = (await gql(client, CALLBACKS, {"limit": 10}))["callbacks"]
    assert lead["id"] == campaign["leads"][0]["id"] and lead["customer"]["name"] == "Bram Jansen"
    answered = (await gql(client, RESPOND, {"code": lead["code"].lower(), "channel": "CALLCENTER",
                                            "response": "REJECTED"}))["recordLeadResponse"]
    assert (answered["status"], answered["response"]) == ("RESPONDED", "REJECTED")
    assert (await gql(client, CALLBACKS, {"limit": 10}))["callbacks"] == []
    body = await gql(client, CALLBACKS, {"limit": 0}, ok=False)
    assert codes(body) == ["BAD_USER_INPUT"]


async def test_unsubscribed_customers_get_no_more_email_and_preferences_count(client, hub, mailbox):
    ids = await demo_ids(client, hub)
    eva = ids["eva.smit@example.net"]
    first = await launch(client, offerId="savings-plus", customerIds=[eva], channels=["EMAIL"])
    await hub.settle()
    await hub.dispatcher.run_once()
    code = first["leads"][0]["code"]
    assert (await client.post(f"/u/{code}")).status_code == 200  # the mail client's one-click
    second = await launch(client, offerId="savings-plus", customerIds=[eva], channels=["EMAIL"])
    await hub.settle()
    await hub.dispatcher.run_once()
    lead = (await gql(client, GET_LEAD, {"id": second["leads"][0]["id"]}))["lead"]
    assert (lead["status"], lead["detail"]) == ("FAILED", "unsubscribed from this channel")
    assert len(mailbox.messages) == 1



async def test_contact_preferences_choose_the_channel_or_leave_the_customer_out(client, hub):
    from hub.model import Key, KeyKind

    made = {}
    for name, attributes in [("Open Olga", {"age": 40}), ("Letters Lars", {"age": 50, "optOut": "EMAIL"}),
                             ("Quiet Quinn", {"age": 60, "doNotContact": True})]:
        mail = f"{name.split()[1].lower()}@example.com"
        made[name] = await hub.contacts.import_customer([Key(KeyKind.EMAIL, mail)], name, attributes)
    await hub.settle()  # CM learns the attributes from customer.created
    campaign = await launch(client, offerId="savings-plus", customerIds=list(made.values()),
                            channels=["EMAIL", "PRINT"])
    channels = {lead["customer"]["name"]: lead["channel"] for lead in campaign["leads"]}
    assert channels == {"Open Olga": "EMAIL", "Letters Lars": "PRINT"}


async def test_refusals_retry_or_fail_and_waiting_leads_survive_a_restart(client, hub, hub_settings, mailbox):
    from hub.runtime import Hub

    ids = await demo_ids(client, hub)
    mailbox.refuse = {"anna.devries@example.com": "451 4.3.0 try again later",
                      "bram.jansen@example.com": "550 5.1.1 no such user"}
    first = await launch(client, offerId="savings-plus", channels=["EMAIL"],
                         customerIds=[ids["anna.devries@example.com"], ids["bram.jansen@example.com"]])
    later = await launch(client, offerId="savings-plus", channels=["EMAIL"],
                         customerIds=[ids["eva.smit@example.net"]])
    await hub.settle()
    await hub.dispatcher.run_once()  # capacity 2 an hour: the older leads (Anna, Bram) are tried first
    leads = {lead["customer"]["id"]: lead["id"] for lead in first["leads"] + later["leads"]}
    anna = (await gql(client, GET_LEAD, {"id": leads[ids["anna.devries@example.com"]]}))["lead"]
    bram = (await gql(client, GET_LEAD, {"id": leads[ids["bram.jansen@example.com"]]}))["lead"]
    eva = (await gql(client, GET_LEAD, {"id": leads[ids["eva.smit@example.net"]]}))["lead"]
    assert anna["status"] == "PLANNED" and "451" in anna["detail"], anna  # tried again later
    assert bram["status"] == "FAILED" and "550" in bram["detail"], bram
    assert eva["status"] == "PLANNED" and mailbox.messages == []
    await hub.close()

    # A new process on the same store: what waited is still there, and is sent once capacity allows.
    again = Hub(hub_settings)
    await again.start()
    try:
        # A refusal did not use capacity up: Eva goes now; Anna waits for her retry time.
        handed = await again.dispatcher.run_once()
        assert handed["email"] == 1, handed
        assert [m["X-Hub-Lead"] for m in mailbox.messages] == [eva["code"]]
    finally:
        await again.close()


async def test_bad_launches_get_coded_errors(client, hub):
    start = await start_contact(client, email="nobody.special@example.com")
    customer = start["customer"]["id"]
    cases = [
        ({"offerId": "no-such-offer", "customerIds": [customer], "channels": ["EMAIL"]}, "UNKNOWN_OFFER"),
        ({"offerId": "savings-plus", "customerIds": [customer], "channels": []}, "BAD_USER_INPUT"),
        ({"offerId": "savings-plus", "channels": ["EMAIL"]}, "BAD_USER_INPUT"),
        ({"offerId": "savings-plus", "segmentId": "no-such-segment", "channels": ["EMAIL"]}, "BAD_USER_INPUT"),
        ({"offerId": "savings-plus", "customerIds": ["c"] * 10_001, "channels": ["EMAIL"]}, "BAD_USER_INPUT"),
    ]
    for payload, code in cases:
        body = await gql(client, LAUNCH, {"input": payload}, ok=False)
        assert codes(body) == [code], (payload, body.get("errors"))
    assert (await gql(client, CAMPAIGN, {"id": "cmp_unknown"}))["campaign"] is None
    assert (await gql(client, GET_LEAD, {"id": "lead_unknown"}))["lead"] is None
    await asyncio.sleep(0)
