"""The marketing reports through GraphQL (funnel, campaignResults, segmentSizes, requestCounts): the
numbers are the ones recorded through the API, a period filters them, a system without the report port
gives a partial answer naming it; the CSV downloads of /ops carry the same rows. Runs on both stacks."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

from hub.core.reporting import Owner, Reporting
from tests.reporting_data import expected_funnel, make_marketing_data
from tests.support import codes, gql

FUNNEL = """query($from: DateTime, $to: DateTime, $channel: Channel, $offerId: ID) {
  funnel(from: $from, to: $to, channel: $channel, offerId: $offerId) {
    offerId channel shown responded accepted rejected acceptanceRate
  }
}"""
CAMPAIGNS = """query($from: DateTime, $to: DateTime, $channel: OutboundChannel) {
  campaignResults(from: $from, to: $to, channel: $channel) {
    campaignId name offerId channel planned sent responded accepted
  }
}"""
SEGMENTS = "{ segmentSizes { segmentId name customers } }"
REQUESTS = "query($from: DateTime, $to: DateTime) { requestCounts(from: $from, to: $to) { kind status count } }"


def iso(at: datetime) -> str:
    return at.isoformat()


async def test_the_reports_hold_what_was_recorded_and_a_period_filters_them(client, hub):
    recorded = await make_marketing_data(client, hub)
    await hub.settle()
    rows = (await gql(client, FUNNEL))["funnel"]
    got = {(r["offerId"], r["channel"]): {k: r[k] for k in ("shown", "responded", "accepted", "rejected")}
           for r in rows}
    assert got == expected_funnel(recorded)
    (website,) = [r for r in rows if (r["offerId"], r["channel"]) == ("savings-plus", "WEBSITE")]
    assert (website["shown"], website["responded"], website["accepted"], website["rejected"]) == (3, 2, 1, 1)
    assert website["acceptanceRate"] == 1 / 3

    # Filters: one channel, one offer.
    only_cc = (await gql(client, FUNNEL, {"channel": "CALLCENTER"}))["funnel"]
    assert [(r["offerId"], r["channel"], r["shown"], r["accepted"]) for r in only_cc] == [
        ("savings-plus", "CALLCENTER", 1, 1)]
    gold = (await gql(client, FUNNEL, {"offerId": "gold-credit-card"}))["funnel"]
    assert {(r["channel"], r["shown"], r["responded"], r["accepted"]) for r in gold} == {("WEBSITE", 2, 1, 0)}

    # A period: everything was recorded just now.
    now = datetime.now(UTC)
    inside = (await gql(client, FUNNEL, {"from": iso(now - timedelta(hours=1)), "to": iso(now + timedelta(hours=1))}))
    assert len(inside["funnel"]) == len(rows)
    before = await gql(client, FUNNEL, {"from": iso(now - timedelta(days=3)), "to": iso(now - timedelta(days=2))})
    assert before["funnel"] == []
    after = await gql(client, REQUESTS, {"from": iso(now + timedelta(hours=1))})
    assert after["requestCounts"] == []

    # Campaign results: LM's counts per channel, CM's name; the same as the campaign's own stats.
    results = (await gql(client, CAMPAIGNS))["campaignResults"]
    mine = [r for r in results if r["campaignId"] == recorded.campaign_id]
    assert mine, results
    assert {r["name"] for r in mine} == {"Savings Plus account - 2.5% interest"}
    assert {r["offerId"] for r in mine} == {"savings-plus"}
    for key in ("planned", "sent", "responded", "accepted"):
        assert sum(r[key] for r in mine) == recorded.campaign[key], (key, mine, recorded.campaign)
    assert all(r["channel"] in ("EMAIL", "PRINT") for r in mine)
    printed = (await gql(client, CAMPAIGNS, {"channel": "PRINT"}))["campaignResults"]
    assert all(r["channel"] == "PRINT" for r in printed)

    # Requests by kind and status; segment sizes (every segment of CM's catalog, the empty ones too).
    counts = {(r["kind"], r["status"]): r["count"] for r in (await gql(client, REQUESTS))["requestCounts"]}
    assert counts == dict(recorded.requests)
    sizes = (await gql(client, SEGMENTS))["segmentSizes"]
    assert {s["segmentId"] for s in sizes} >= {"adults", "gold-tier"}
    assert all(s["customers"] >= 0 for s in sizes)


async def test_bad_arguments_are_the_callers_mistake(client):
    now = datetime.now(UTC)
    body = await gql(client, FUNNEL, {"from": iso(now), "to": iso(now - timedelta(days=1))}, ok=False)
    assert codes(body) == ["BAD_USER_INPUT"] and body["data"] is None
    body = await gql(client, FUNNEL, {"offerId": "x" * 81}, ok=False)
    assert codes(body) == ["BAD_USER_INPUT"]
    body = await gql(client, FUNNEL, {"channel": "PIGEON"}, ok=False)
    assert body["errors"] and "PIGEON" in body["errors"][0]["message"]


class PlainCM:
    """A CM that ranks offers but reports nothing (no OfferReports): the reports say so, naming it."""

    async def offers(self):
        return []


async def test_a_system_without_the_report_port_gives_a_partial_answer_naming_it(client, hub):
    wiring = hub.wiring
    original = wiring.reporting
    wiring.reporting = Reporting(
        Owner("decision_engine", "othercm", PlainCM()), Owner("lead_manager", None, None),
        Owner("request_registry", "crm", hub.systems.adapters["crm"]),
    )
    try:
        body = await gql(client, "{ funnel { offerId } segmentSizes { name } campaignResults { campaignId } "
                                 "requestCounts { count } }", ok=False)
    finally:
        wiring.reporting = original
    assert body["data"]["funnel"] == [] and body["data"]["segmentSizes"] == []
    assert body["data"]["campaignResults"] == [] and body["data"]["requestCounts"] == []
    by_path = {e["path"][0]: e for e in body["errors"]}
    assert by_path["funnel"]["extensions"] == {"code": "NOT_SUPPORTED", "system": "othercm"}
    assert "othercm" in by_path["funnel"]["message"]
    assert by_path["segmentSizes"]["extensions"]["code"] == "NOT_SUPPORTED"
    assert by_path["campaignResults"]["extensions"]["code"] == "NOT_CONFIGURED"
    assert "requestCounts" not in by_path


async def test_the_csv_downloads_carry_the_reports_rows(client, hub):
    recorded = await make_marketing_data(client, hub)
    await hub.settle()
    today = datetime.now(UTC).date().isoformat()
    response = await client.get(f"/ops/funnel.csv?from={today}&to={today}")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert f'filename="funnel-{today}-{today}.csv"' in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert list(rows[0]) == ["offerId", "channel", "shown", "responded", "accepted", "rejected", "acceptanceRate"]
    got = {(r["offerId"], r["channel"]): {k: int(r[k]) for k in ("shown", "responded", "accepted", "rejected")}
           for r in rows}
    assert got == expected_funnel(recorded)
    website = next(r for r in rows if (r["offerId"], r["channel"]) == ("savings-plus", "WEBSITE"))
    assert website["acceptanceRate"] == "0.3333"

    campaigns = list(csv.DictReader(io.StringIO((await client.get("/ops/campaigns.csv")).text)))
    mine = [r for r in campaigns if r["campaignId"] == recorded.campaign_id]
    assert sum(int(r["planned"]) for r in mine) == recorded.campaign["planned"]
    requests = list(csv.DictReader(io.StringIO((await client.get("/ops/requests.csv")).text)))
    assert {(r["kind"], r["status"]): int(r["count"]) for r in requests} == dict(recorded.requests)
    segments = (await client.get("/ops/segments.csv")).text.splitlines()
    assert segments[0] == "segmentId,name,customers"

    # Another period holds none of it; a bad date is a 400, an unknown report a 404.
    old = list(csv.DictReader(io.StringIO((await client.get("/ops/funnel.csv?from=2020-01-01&to=2020-01-31")).text)))
    assert old == []
    assert (await client.get("/ops/funnel.csv?from=yesterday")).status_code == 400
    assert (await client.get("/ops/funnel.csv?from=2026-02-01&to=2026-01-01")).status_code == 400
    assert (await client.get("/ops/secrets.csv")).status_code == 404


def test_a_cell_a_spreadsheet_would_run_is_quoted():
    from hub.api.ops.exports import segments_csv
    from hub.model.report import SegmentSize

    text = segments_csv([SegmentSize("s1", "=HYPERLINK(\"http://x\")", 3), SegmentSize("s2", "-1+1", 1)])
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[1] == ["s1", "'=HYPERLINK(\"http://x\")", "3"] and rows[2] == ["s2", "'-1+1", "1"]
