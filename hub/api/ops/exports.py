"""The marketing reports as CSV for BI tools (/ops/funnel.csv, campaigns.csv, segments.csv,
requests.csv): a header row with the GraphQL field names, then one row per report row. A text that a
spreadsheet would run as a formula (=, +, -, @ first) is quoted with a leading apostrophe."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

from hub.core.reporting import CampaignResult
from hub.model.report import FunnelCount, RequestCount, SegmentSize

FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}"
    text = str(value)
    return f"'{text}" if text.startswith(FORMULA) else text


def _table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([_cell(v) for v in row])
    return out.getvalue()


def funnel_csv(rows: Sequence[FunnelCount]) -> str:
    return _table(
        ("offerId", "channel", "shown", "responded", "accepted", "rejected", "acceptanceRate"),
        ((r.offer_id, r.channel.value, r.shown, r.responded, r.accepted, r.rejected, r.acceptance_rate)
         for r in rows),
    )


def campaigns_csv(rows: Sequence[CampaignResult]) -> str:
    return _table(
        ("campaignId", "name", "offerId", "channel", "planned", "sent", "responded", "accepted"),
        ((r.campaign_id, r.name, r.offer_id, r.channel.value, r.planned, r.sent, r.responded, r.accepted)
         for r in rows),
    )


def segments_csv(rows: Sequence[SegmentSize]) -> str:
    return _table(("segmentId", "name", "customers"), ((r.segment_id, r.name, r.customers) for r in rows))


def requests_csv(rows: Sequence[RequestCount]) -> str:
    return _table(("kind", "status", "count"), ((r.kind.value, r.status.value, r.count) for r in rows))
