"""The /ops page's HTML, drawn on the server. Every value from data goes through `e()` (HTML-escaped,
quotes too): an offer's title or a dead letter's reason can never become markup. No inline script or
style: the page's Content-Security-Policy allows only the hub's own assets (/ops/static)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from html import escape
from urllib.parse import urlencode

from hub.api.ops import svg
from hub.api.ops.panels import Chosen, Marketing, Overview, Queues
from hub.config.mapping import FlowMode
from hub.core.errors import HubError
from hub.core.flows import FlowStatus
from hub.security.principal import Principal
from hub.security.scopes import OPERATIONS_READ, REPORTS_READ

PANELS = (  # path, title, the scope that shows it
    ("/ops", "Health", OPERATIONS_READ),
    ("/ops/flows", "Flows", OPERATIONS_READ),
    ("/ops/queues", "Queues and dead letters", OPERATIONS_READ),
    ("/ops/marketing", "Marketing", REPORTS_READ),
)


def e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def _when(at: datetime | None) -> str:
    return "—" if at is None else at.strftime("%Y-%m-%d %H:%M:%S UTC")


def page(title: str, body: str, *, principal: Principal | None = None, active: str = "", csrf: str = "",
         signed_in: bool = False) -> str:
    nav = ""
    if principal is not None:
        links = "".join(
            f'<a href="{path}"{" aria-current=page" if path == active else ""}>{e(name)}</a>'
            for path, name, scope in PANELS
            if principal.allows(scope)
        )
        who = f"{e(principal.name)} ({e(principal.kind)})"
        out = (
            f'<form method="post" action="/ops/logout" class="inline"><input type="hidden" name="csrf" '
            f'value="{e(csrf)}"><button type="submit" id="sign-out">Sign out</button></form>'
            if signed_in else ""
        )
        nav = f'<nav>{links}</nav><p class="who">Signed in: {who} {out}</p>'
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)} · MarkITing Hub</title>"
        '<link rel="icon" type="image/svg+xml" href="/ops/static/favicon.svg">'
        '<link rel="stylesheet" href="/ops/static/ops.css">'
        '<script src="/ops/static/ops.js" defer></script>'
        f'</head><body><header><h1>MarkITing Hub · operations</h1>{nav}</header>'
        f'<main><h2>{e(title)}</h2>{body}</main></body></html>'
    )


def notice(text: str, kind: str = "info") -> str:
    return f'<p class="notice {e(kind)}" role="status">{e(text)}</p>'


def errors(found: Sequence[HubError]) -> str:
    """A partial report's errors, each naming its system."""
    return "".join(
        f'<p class="notice partial" role="alert">Partial: {e(x.message)}'
        f' <code>{e(x.extensions.get("code"))}</code></p>'
        for x in found
    )


def table(header: Sequence[str], rows: Iterable[str], table_id: str, empty: str = "Nothing here.") -> str:
    body = "".join(rows)
    if not body:
        return f'<p class="empty" id="{e(table_id)}-empty">{e(empty)}</p>'
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    return f'<table id="{e(table_id)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def login(message: str = "", kind: str = "info") -> str:
    body = (
        (notice(message, kind) if message else "")
        + '<form method="post" action="/ops/login" class="login">'
        '<label for="key">API key (scope operations:read, or reports:read for the marketing panel)</label>'
        '<input type="password" id="key" name="key" autocomplete="off" required maxlength="4096">'
        '<button type="submit" id="sign-in">Sign in</button></form>'
        "<p>Create one with <code>hub keys create NAME --scopes operations:read,operations:write,"
        "reports:read</code>.</p>"
    )
    return page("Sign in", body)


def forbidden(principal: Principal, scope: str, csrf: str, signed_in: bool) -> str:
    body = notice(f"This credential lacks the scope {scope}: it may not open this panel.", "error")
    return page("Not allowed", body, principal=principal, csrf=csrf, signed_in=signed_in)


def health(o: Overview) -> str:
    rows = (
        f'<tr class="system" data-system="{e(s.name)}"><td>{e(s.name)}</td>'
        f'<td class="state state-{e(s.state.replace(" ", "-"))}">{e(s.state)}</td>'
        f"<td>{s.millis} ms</td><td>{'yes' if s.essential else 'no'}</td><td>{e(s.detail)}</td></tr>"
        for s in o.systems
    )
    backlog = "unknown" if o.outbox_backlog is None else str(o.outbox_backlog)
    cards = (
        '<div class="cards">'
        f'<div class="card" id="bus"><h3>Bus</h3><p class="state state-{"up" if o.bus_ok else "down"}">'
        f'{"up" if o.bus_ok else "down"}</p><p>{e(o.bus_detail)}</p></div>'
        f'<div class="card" id="store"><h3>Store</h3><p class="state state-{"up" if o.store_ok else "down"}">'
        f'{"up" if o.store_ok else "down"}</p><p>{e(o.store_detail)}</p></div>'
        f'<div class="card" id="outbox"><h3>Outbox</h3><p>backlog <strong>{e(backlog)}</strong></p>'
        f'<p>{e(o.relay_error or "relay publishing")}</p></div>'
        f'<div class="card"><h3>Mapping</h3><p>version {o.mapping_version}</p></div></div>'
    )
    head = ("system", "state", "check", "essential", "detail")
    return cards + "<h3>Systems</h3>" + table(head, rows, "systems")


def flows(
    found: Sequence[FlowStatus], may_write: bool, csrf: str, message: str = "", kind: str = "info"
) -> str:
    def run(f: FlowStatus) -> str:
        if f.mode is FlowMode.REALTIME or not may_write:
            return ""
        return (
            f'<form method="post" action="/ops/flows/run" data-confirm="Run flow {e(f.name)} now?">'
            f'<input type="hidden" name="csrf" value="{e(csrf)}"><input type="hidden" name="name" '
            f'value="{e(f.name)}"><button type="submit" class="run">Run now</button></form>'
        )

    rows = (
        f'<tr class="flow" data-flow="{e(f.name)}"><td>{e(f.name)}</td>'
        f"<td>{e(f.source)} → {e(f.destination)}</td>"
        f"<td>{e(f.mode.value)}</td><td>{e(f.schedule)}</td>"
        f'<td class="pending">{"?" if f.pending is None else f.pending}</td>'
        f"<td>{_when(f.last_run_at)}</td><td>{_when(f.next_run_at)}</td><td>{run(f)}</td></tr>"
        for f in found
    )
    head = ("flow", "route", "mode", "schedule", "pending", "last run", "next run", "")
    return (notice(message, kind) if message else "") + table(head, rows, "flows")


def queues(q: Queues, may_write: bool, csrf: str, message: str = "", kind: str = "info") -> str:
    parts = [notice(message, kind) if message else ""]
    if q.bus_error:
        parts.append(notice(f"The bus cannot be asked: {q.bus_error}", "error"))
    parts.append(f'<p id="outbox-backlog">Outbox backlog: <strong>{q.outbox_backlog}</strong>'
                 f'{" · " + e(q.relay_error) if q.relay_error else ""}</p>')
    rows = (
        f'<tr class="queue" data-queue="{e(s.queue)}"><td>{e(s.queue)}</td><td class="depth">{s.depth}</td>'
        f'<td class="dead">{s.dead_letters}</td></tr>'
        for s in q.queues
    )
    parts.append("<h3>Queues</h3>" + table(("queue", "depth", "dead letters"), rows, "queues"))

    def replay(letter_id: str | None, label: str, question: str) -> str:
        if not may_write:
            return ""
        which = (f'<input type="hidden" name="id" value="{e(letter_id)}">' if letter_id
                 else '<input type="hidden" name="all" value="1">')
        return (
            f'<form method="post" action="/ops/dead-letters/replay" data-confirm="{e(question)}">'
            f'<input type="hidden" name="csrf" value="{e(csrf)}">{which}'
            f'<button type="submit" class="replay">{e(label)}</button></form>'
        )

    letters = (
        f'<tr class="dead-letter" data-id="{e(d.id)}"><td><code>{e(d.id)}</code></td><td>{e(d.queue)}</td>'
        f'<td>{d.attempts}</td><td>{_when(d.dead_at)}</td><td class="reason">{e(d.reason)}</td>'
        f"<td>{replay(d.id, 'Replay', f'Replay dead letter {d.id} to {d.queue}?')}</td></tr>"
        for d in q.dead_letters
    )
    parts.append("<h3>Dead letters</h3>")
    if q.dead_letters:
        parts.append(replay(None, f"Replay all {len(q.dead_letters)}",
                            f"Replay all {len(q.dead_letters)} dead letters to their queues?"))
    parts.append(table(("id", "queue", "attempts", "dead since", "reason", ""), letters, "dead-letters",
                       "No dead letters."))
    return "".join(parts)


def _query(chosen: Chosen) -> str:
    return urlencode({"from": chosen.start.isoformat(), "to": chosen.end.isoformat()})


def marketing(m: Marketing, chosen: Chosen) -> str:
    q = _query(chosen)
    form = (
        '<form method="get" action="/ops/marketing" class="period">'
        f'<label>From <input type="date" name="from" id="from" value="{chosen.start.isoformat()}"></label>'
        f'<label>To <input type="date" name="to" id="to" value="{chosen.end.isoformat()}"></label>'
        '<button type="submit" id="apply-period">Show</button>'
        "<span>UTC days, both included.</span></form>"
    )
    parts = [form]

    def section(key: str, title: str, csv: str, body: str, found: Sequence[HubError]) -> None:
        parts.append(
            f'<section id="{key}"><h3>{e(title)} <a class="csv" id="{key}-csv" href="/ops/{csv}.csv?{e(q)}" '
            f'download>CSV</a></h3>{errors(found)}{body}</section>'
        )

    funnel = m.funnel.rows
    rows = (
        f'<tr class="funnel-row" data-offer="{e(r.offer_id)}" data-channel="{e(r.channel.value)}">'
        f"<td>{e(r.offer_id)}</td><td>{e(r.channel.value)}</td><td class=\"shown\">{r.shown}</td>"
        f'<td class="responded">{r.responded}</td><td class="accepted">{r.accepted}</td>'
        f'<td class="rejected">{r.rejected}</td>'
        f'<td class="rate">{"—" if r.acceptance_rate is None else f"{r.acceptance_rate:.1%}"}</td></tr>'
        for r in funnel
    )
    chart = svg.bar_chart("Offer funnel", ("shown", "responded", "accepted"),
                          [(f"{r.offer_id} · {r.channel.value}", (r.shown, r.responded, r.accepted))
                           for r in funnel]) if funnel else ""
    section("funnel", "Offer funnel per offer and channel", "funnel", chart + table(
        ("offer", "channel", "shown", "responded", "accepted", "rejected", "acceptance rate"), rows,
        "funnel-table", "No propositions shown in this period."), m.funnel.errors)

    campaigns = m.campaigns.rows
    rows = (
        f'<tr class="campaign-row" data-campaign="{e(r.campaign_id)}" data-channel="{e(r.channel.value)}">'
        f"<td><code>{e(r.campaign_id)}</code></td><td class=\"name\">{e(r.name or '—')}</td>"
        f"<td>{e(r.channel.value)}</td><td class=\"planned\">{r.planned}</td><td class=\"sent\">{r.sent}</td>"
        f'<td class="responded">{r.responded}</td><td class="accepted">{r.accepted}</td></tr>'
        for r in campaigns
    )
    chart = svg.bar_chart("Campaign results", ("planned", "sent", "responded", "accepted"),
                          [(f"{r.name or r.campaign_id} · {r.channel.value}",
                            (r.planned, r.sent, r.responded, r.accepted))
                           for r in campaigns]) if campaigns else ""
    section("campaigns", "Campaign results per channel", "campaigns", chart + table(
        ("campaign", "name", "channel", "planned", "sent", "responded", "accepted"), rows, "campaigns-table",
        "No campaign leads in this period."), m.campaigns.errors)

    segments = m.segments.rows
    rows = (
        f'<tr class="segment-row" data-segment="{e(r.segment_id)}"><td>{e(r.name)}</td>'
        f'<td><code>{e(r.segment_id)}</code></td><td class="customers">{r.customers}</td></tr>'
        for r in segments
    )
    chart = svg.bar_chart("Segment sizes", ("customers",),
                          [(r.name, (r.customers,)) for r in segments]) if segments else ""
    section("segments", "Segment sizes (now)", "segments", chart + table(
        ("segment", "id", "customers"), rows, "segments-table", "No segments."), m.segments.errors)

    requests = m.requests.rows
    rows = (
        f'<tr class="request-row" data-kind="{e(r.kind.value)}" data-status="{e(r.status.value)}">'
        f'<td>{e(r.kind.value)}</td><td>{e(r.status.value)}</td><td class="count">{r.count}</td></tr>'
        for r in requests
    )
    chart = svg.bar_chart("Requests by status", ("requests",),
                          [(f"{r.kind.value} · {r.status.value}", (r.count,))
                           for r in requests]) if requests else ""
    section("requests", "Requests by kind and status", "requests", chart + table(
        ("kind", "status", "requests"), rows, "requests-table", "No requests in this period."),
        m.requests.errors)
    return "".join(parts)
