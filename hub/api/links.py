"""The links in outbound messages: `/r/{code}` records the customer's response to a lead and redirects to
the landing page; `/u/{code}` unsubscribes the customer from that lead's channel (GET from the link,
POST from the mail client's one-click `List-Unsubscribe-Post`). A code that finds no lead is a plain 404
that says nothing about leads or customers."""

from __future__ import annotations

import html
import logging
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from hub.core.errors import HubError
from hub.model import Channel, PropositionResponse
from hub.runtime import Hub

log = logging.getLogger(__name__)

PAGE = (
    '<!doctype html><html lang="en"><meta charset="utf-8"><title>{title}</title>'
    '<body style="font-family: sans-serif; max-width: 36em; margin: 4em auto">'
    "<h1>{title}</h1><p>{text}</p></body></html>"
)


def _page(title: str, text: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(PAGE.format(title=html.escape(title), text=html.escape(text)), status_code=status)


def routes(hub: Hub) -> list[Route]:
    async def respond(request: Request) -> Response:
        code = request.path_params["code"]
        raw = request.query_params.get("response", PropositionResponse.ACCEPTED.value).upper()
        if raw not in PropositionResponse.__members__:
            return _page("Not found", "This link is not valid.", 404)
        responses = hub.wiring.responses
        if responses is None:
            return _page("Not found", "This link is not valid.", 404)
        try:
            lead = await responses.record(code, Channel.EMAIL, PropositionResponse(raw))
        except HubError:
            return _page("Not found", "This link is not valid.", 404)
        landing = hub.settings.landing_url or f"{hub.settings.public_url.rstrip('/')}/thanks"
        query = urlencode({"offer": lead.offer_id, "code": lead.code})
        return RedirectResponse(f"{landing}{'&' if '?' in landing else '?'}{query}", status_code=303)

    async def unsubscribe(request: Request) -> Response:
        responses = hub.wiring.responses
        if responses is None:
            return _page("Not found", "This link is not valid.", 404)
        try:
            await responses.unsubscribe(request.path_params["code"])
        except HubError:
            return _page("Not found", "This link is not valid.", 404)
        return _page("Unsubscribed", "You will receive no more offers this way.")

    async def thanks(_: Request) -> Response:
        return _page("Thank you", "We have your answer and will be in touch.")

    return [
        Route("/r/{code}", respond, methods=["GET"]),
        Route("/u/{code}", unsubscribe, methods=["GET", "POST"]),
        Route("/thanks", thanks, methods=["GET"]),
    ]
