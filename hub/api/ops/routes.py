"""The /ops routes: the four panels (health, flows, queues, marketing), sign-in and sign-out, the
operator actions (replay dead letters, run a flow), the CSV downloads and the page's own assets."""

from __future__ import annotations

from importlib import resources
from urllib.parse import parse_qs, urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from hub.api.ops import exports, panels, render
from hub.api.ops.auth import (
    COOKIE,
    COOKIE_PATH,
    MAX_CREDENTIAL,
    SignedOut,
    Throttled,
    check_credential,
    cookie_options,
    csrf_ok,
    csrf_token,
    operator,
    same_origin,
)
from hub.core import operations
from hub.core.errors import BadInput, HubError, Unauthenticated
from hub.runtime import Hub
from hub.security.principal import Principal
from hub.security.scopes import OPERATIONS_READ, OPERATIONS_WRITE, REPORTS_READ

MAX_FORM = 16 * 1024
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
PAGE_HEADERS = {"content-security-policy": CSP, "referrer-policy": "same-origin"}
STATIC = {  # name -> media type: the page's only assets, served by the hub (no CDN)
    "ops.css": "text/css; charset=utf-8",
    "ops.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
REPORTS = ("funnel", "campaigns", "segments", "requests")
FAILURES = {  # a failed action's code -> what the page says (no text from the query string is shown)
    "FLOW_BUSY": "is running now; try again when that run is over",
    "UNKNOWN_FLOW": "is not a flow of the mapping",
    "BAD_USER_INPUT": "is realtime: its events are delivered as they come",
    "BUS_UNAVAILABLE": "could not run: the bus is unavailable",
}


def _html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers=PAGE_HEADERS)


def _asset(name: str) -> bytes:
    return (resources.files("hub.api.ops") / "static" / name).read_bytes()


def routes(hub: Hub) -> list[BaseRoute]:
    assets = {name: _asset(name) for name in STATIC}

    def signed_in() -> bool:
        return hub.settings.auth_required

    async def who(request: Request, scope: str, html: bool = True) -> Principal | Response:
        """The signed-in operator with `scope`, or the answer that refuses the request."""
        try:
            principal = await operator(hub, request)
        except SignedOut as out:
            response: Response
            if html and request.method == "GET":
                response = RedirectResponse("/ops/login" + ("?signed_out=1" if out.had_cookie else ""), 303)
            else:
                response = PlainTextResponse(out.reason, 401)
            if out.had_cookie:
                response.delete_cookie(COOKIE, path=COOKIE_PATH)
            return response
        except Throttled as slow:
            return PlainTextResponse("too many failed sign-ins; try again later", 429,
                                     headers={"retry-after": str(max(1, round(slow.wait)))})
        if not principal.allows(scope):
            if html:
                return _html(render.forbidden(principal, scope, csrf_token(request), signed_in()), 403)
            return PlainTextResponse(f"this credential lacks the scope {scope}", 403)
        return principal

    def shown(principal: Principal, request: Request, title: str, active: str, body: str,
              status: int = 200) -> HTMLResponse:
        page = render.page(title, body, principal=principal, active=active, csrf=csrf_token(request),
                           signed_in=signed_in())
        return _html(page, status)

    async def form(request: Request) -> dict[str, str] | None:
        raw = await request.body()
        if len(raw) > MAX_FORM:
            return None
        parsed = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
        return {k: v[0] for k, v in parsed.items() if v}

    # --- the panels ------------------------------------------------------------------------------------

    async def health(request: Request) -> Response:
        principal = await who(request, OPERATIONS_READ)
        if isinstance(principal, Response):
            return principal
        return shown(principal, request, "Health", "/ops", render.health(await panels.overview(hub)))

    async def flows(request: Request) -> Response:
        principal = await who(request, OPERATIONS_READ)
        if isinstance(principal, Response):
            return principal
        message, kind = "", "info"
        ran, delivered = request.query_params.get("ran"), request.query_params.get("delivered")
        failed = request.query_params.get("failed")
        if ran and delivered and delivered.isdigit():
            message = f"Flow {ran[:80]} ran: {delivered} events delivered."
        elif ran and failed in FAILURES:
            message, kind = f"Flow {ran[:80]} {FAILURES[failed]}.", "error"
        body = render.flows(await panels.flows(hub), principal.allows(OPERATIONS_WRITE), csrf_token(request),
                            message, kind)
        return shown(principal, request, "Flows", "/ops/flows", body)

    async def queues(request: Request) -> Response:
        principal = await who(request, OPERATIONS_READ)
        if isinstance(principal, Response):
            return principal
        replayed = request.query_params.get("replayed", "")
        message = f"Replayed {int(replayed)} dead letter(s) to their queues." if replayed.isdigit() else ""
        if request.query_params.get("failed") == "BUS_UNAVAILABLE":
            message = "The bus is unavailable: nothing was replayed."
        kind = "error" if "unavailable" in message else "info"
        may_write = principal.allows(OPERATIONS_WRITE)
        body = render.queues(await panels.queues(hub), may_write, csrf_token(request), message, kind)
        return shown(principal, request, "Queues and dead letters", "/ops/queues", body)

    async def marketing(request: Request) -> Response:
        principal = await who(request, REPORTS_READ)
        if isinstance(principal, Response):
            return principal
        try:
            chosen = panels.chosen_period(request.query_params.get("from"), request.query_params.get("to"))
        except BadInput as exc:
            body = render.notice(f"{exc.message}.", "error")
            return shown(principal, request, "Marketing", "/ops/marketing", body, 400)
        body = render.marketing(await panels.marketing(hub, chosen.period), chosen)
        return shown(principal, request, "Marketing", "/ops/marketing", body)

    # --- the actions -------------------------------------------------------------------------------------

    async def act(request: Request) -> tuple[Principal, dict[str, str]] | Response:
        principal = await who(request, OPERATIONS_WRITE, html=False)
        if isinstance(principal, Response):
            return principal
        fields = await form(request)
        if fields is None or not csrf_ok(request, fields.get("csrf")):
            return PlainTextResponse("refused: this form did not come from the hub's own page", 403)
        return principal, fields

    def audit(principal: Principal, action: str, target: str | None, outcome: str) -> None:
        hub.security.audit.record(principal.name, principal.kind, action, target, outcome)

    async def replay(request: Request) -> Response:
        acting = await act(request)
        if isinstance(acting, Response):
            return acting
        principal, fields = acting
        letter = fields.get("id") or None
        try:
            count = await operations.replay(hub.bus, [letter] if letter else None, fields.get("all") == "1")
        except BadInput:
            return PlainTextResponse("give a dead letter's id, or all", 400)
        except operations.BusUnavailable as exc:
            audit(principal, "ops.replayDeadLetters", letter, exc.code)
            return RedirectResponse("/ops/queues?failed=BUS_UNAVAILABLE", 303)
        audit(principal, "ops.replayDeadLetters", letter or "all", "ok")
        return RedirectResponse(f"/ops/queues?replayed={count}", 303)

    async def run_flow(request: Request) -> Response:
        acting = await act(request)
        if isinstance(acting, Response):
            return acting
        principal, fields = acting
        name = fields.get("name", "")[:200]
        try:
            count = await operations.run_flow(hub.scheduler, hub.wiring.mapping.flows, name)
        except HubError as exc:
            audit(principal, "ops.runFlow", name, exc.code)
            return RedirectResponse("/ops/flows?" + urlencode({"ran": name, "failed": exc.code}), 303)
        audit(principal, "ops.runFlow", name, "ok")
        return RedirectResponse("/ops/flows?" + urlencode({"ran": name, "delivered": count}), 303)

    # --- signing in and out --------------------------------------------------------------------------

    async def login(request: Request) -> Response:
        if not hub.settings.auth_required:
            return RedirectResponse("/ops", 303)
        if request.method == "GET":
            if request.query_params.get("signed_out"):
                return _html(render.login("Your key is no longer accepted (revoked or unknown): signed out.",
                                          "error"))
            return _html(render.login())
        if not same_origin(request):
            return _html(render.login("Refused: sign in from the hub's own page.", "error"), 403)
        fields = await form(request) or {}
        key = fields.get("key", "").strip()
        if not key or len(key) > MAX_CREDENTIAL:
            return _html(render.login("Paste an API key.", "error"), 400)
        try:
            principal = await check_credential(hub, key, request)
        except Throttled:
            return _html(render.login("Too many failed sign-ins from here; try again later.", "error"), 429)
        except Unauthenticated:
            refused = "That key is not accepted (unknown, revoked or mistyped)."
            return _html(render.login(refused, "error"), 401)
        if not (principal.allows(OPERATIONS_READ) or principal.allows(REPORTS_READ)):
            return _html(render.login("That key has neither operations:read nor reports:read.", "error"), 403)
        audit(principal, "ops.signIn", None, "ok")
        response = RedirectResponse("/ops" if principal.allows(OPERATIONS_READ) else "/ops/marketing", 303)
        response.set_cookie(COOKIE, key, **cookie_options(request))  # type: ignore[arg-type]
        return response

    async def logout(request: Request) -> Response:
        fields = await form(request) or {}
        if not csrf_ok(request, fields.get("csrf")):
            return PlainTextResponse("refused: this form did not come from the hub's own page", 403)
        response = RedirectResponse("/ops/login" if hub.settings.auth_required else "/ops", 303)
        response.delete_cookie(COOKIE, path=COOKIE_PATH)
        return response

    # --- downloads and assets ----------------------------------------------------------------------------

    async def csv(request: Request) -> Response:
        report = request.path_params["report"]
        if report not in REPORTS:
            return PlainTextResponse("no such report", 404)
        principal = await who(request, REPORTS_READ, html=False)
        if isinstance(principal, Response):
            return principal
        try:
            chosen = panels.chosen_period(request.query_params.get("from"), request.query_params.get("to"))
        except BadInput as exc:
            return PlainTextResponse(exc.message, 400)
        reporting = hub.wiring.reporting
        assert reporting is not None
        period = chosen.period
        text, found_errors = "", []
        if report == "funnel":
            f = await reporting.funnel(period)
            text, found_errors = exports.funnel_csv(f.rows), f.errors
        elif report == "campaigns":
            c = await reporting.campaign_results(period)
            text, found_errors = exports.campaigns_csv(c.rows), c.errors
        elif report == "segments":
            s = await reporting.segment_sizes()
            text, found_errors = exports.segments_csv(s.rows), s.errors
        else:
            r = await reporting.request_counts(period)
            text, found_errors = exports.requests_csv(r.rows), r.errors
        if found_errors:  # a BI tool must not take partial numbers for whole ones
            why = "; ".join(x.message for x in found_errors)
            return PlainTextResponse(f"the report is partial: {why}", 503)
        name = f"{report}-{chosen.start.isoformat()}-{chosen.end.isoformat()}.csv"
        return Response(text, media_type="text/csv; charset=utf-8",
                        headers={"content-disposition": f'attachment; filename="{name}"'})

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in assets:
            return PlainTextResponse("not found", 404)
        cache = {"cache-control": "public, max-age=3600"}
        return Response(assets[name], media_type=STATIC[name], headers=cache)

    async def favicon(_: Request) -> Response:
        return Response(assets["favicon.svg"], media_type=STATIC["favicon.svg"],
                        headers={"cache-control": "public, max-age=86400"})

    async def slash(_: Request) -> Response:
        return RedirectResponse("/ops", 308)

    return [
        Route("/ops", health),
        Route("/ops/", slash),
        Route("/ops/flows", flows),
        Route("/ops/queues", queues),
        Route("/ops/marketing", marketing),
        Route("/ops/login", login, methods=["GET", "POST"]),
        Route("/ops/logout", logout, methods=["POST"]),
        Route("/ops/flows/run", run_flow, methods=["POST"]),
        Route("/ops/dead-letters/replay", replay, methods=["POST"]),
        Route("/ops/{report}.csv", csv),
        Route("/ops/static/{name}", static),
        Route("/favicon.ico", favicon),
    ]
