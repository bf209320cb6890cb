"""GraphiQL, served whole by the hub: the page at GET /graphql (a browser asking for HTML) and its assets at
/graphql/assets/<name>, so it works without the internet (strawberry's own page loads them from a CDN).

The assets are GraphiQL's built files from npm (graphiql, react, react-dom, @graphiql/plugin-explorer),
vendored with their licenses into hub/api/static/graphiql by tools/vendor_graphiql.py (VENDORED.json
names the versions); the page (graphiql.html) and its script (hub-graphiql.js) are the hub's own. The page
carries a Content-Security-Policy that lets it load and connect to nothing but the hub.

Neither the page nor the assets need a credential: they are static and hold no data; the requests
GraphiQL makes carry the credential the user enters in its headers pane (HTTP headers, and the
websocket's connection_init payload).
"""

from __future__ import annotations

import hashlib
import re
from functools import cache
from importlib.resources import files

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

ASSETS_PATH = "/graphql/assets"
_CSS = "text/css; charset=utf-8"
_JS = "text/javascript; charset=utf-8"
# The files the page may load: name -> content type. Nothing else under the folder is served.
ASSETS = {
    "graphiql.min.css": _CSS,
    "plugin-explorer.css": _CSS,
    "hub-graphiql.css": _CSS,
    "react.production.min.js": _JS,
    "react-dom.production.min.js": _JS,
    "graphiql.min.js": _JS,
    "plugin-explorer.umd.js": _JS,
    "hub-graphiql.js": _JS,
}
# Only the hub: its own scripts and styles (React sets style attributes), data: for the icon and the
# fonts inlined in GraphiQL's CSS, and connections to the hub over HTTP and its websocket (ws: or wss:,
# whichever a TLS proxy in front makes it).
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self' ws://{host} wss://{host}; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
_HOST = re.compile(r"^[A-Za-z0-9.\-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")
ASSET_MAX_AGE = 86400  # a day; the page asks for each asset with ?v=<versions>, so a refresh is seen at once


def _folder():  # type: ignore[no-untyped-def]
    return files("hub.api").joinpath("static", "graphiql")


@cache
def _read(name: str) -> bytes:
    return _folder().joinpath(name).read_bytes()


@cache
def _version() -> str:
    """Changes with any served file: what the page asks for is never an older copy from a cache."""
    digest = hashlib.sha256()
    for name in sorted(ASSETS):
        digest.update(_read(name))
    return digest.hexdigest()[:16]


def page(request: Request) -> HTMLResponse:
    """The page, with asset paths under the app's mount point (root_path)."""
    assets = f"{request.scope.get('root_path', '')}{ASSETS_PATH}"
    html = _read("graphiql.html").decode().replace("{assets}", assets).replace("{version}", _version())
    host = request.headers.get("host", "")
    policy = PAGE_POLICY.replace("{host}", host if _HOST.match(host) else "localhost")
    return HTMLResponse(html, headers={"content-security-policy": policy})


async def asset(request: Request) -> Response:
    name = request.path_params["name"]
    media_type = ASSETS.get(name)
    if media_type is None:
        body = {"errors": [{"message": "no such GraphiQL asset", "extensions": {"code": "NOT_FOUND"}}]}
        return JSONResponse(body, status_code=404)
    return Response(
        _read(name),
        media_type=media_type,
        headers={"cache-control": f"public, max-age={ASSET_MAX_AGE}, immutable"},
    )


def routes() -> list[Route]:
    return [Route(f"{ASSETS_PATH}/{{name}}", asset, methods=["GET", "HEAD"])]
