"""The GraphQL view's edges, both transports: how a request is read, which operations each transport
runs, and how a refusal is answered.

HTTP: the body is read strictly (hub.api.bodies); queries over GET or POST, mutations over POST only
(405 over GET), subscriptions never (400: they run over the websocket); an unknown operationName is a
400; every refusal is a JSON answer with `errors[0].extensions.code`.

Media types (the GraphQL-over-HTTP spec, held to by graphql-http's audit in tests/ecosystem): a caller
whose Accept prefers `application/graphql-response+json` gets its answers in that type, and a request
error (the document does not parse or validate, the variables do not coerce: nothing ran) is then a 400
with no `data` entry; with `application/json` (the default, and for `*/*` or no Accept) such an answer
is a 200 with `"data": null`, as the spec asks for that type.

graphql-transport-ws: a message that is not an object with a string `type`, or a `subscribe` whose
payload is not `{query: string, variables?: object, operationName?: string, extensions?: object}`,
closes the socket with 4400 (the protocol's answer to an invalid message); every error the socket sends
(`error` and `next` payloads) carries `extensions.code`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import orjson
from cross_web import AsyncHTTPRequestAdapter, HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send
from strawberry.asgi import GraphQL
from strawberry.exceptions import MissingQueryError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler
from strawberry.subscriptions.protocols.graphql_transport_ws.types import Message
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from hub.api import graphiql
from hub.api.bodies import (
    RequestError,
    code_for,
    decode_body,
    decode_json,
    json_content_type,
    request_data,
)
from hub.api.context import Context
from hub.api.errors import http_error_body

log = logging.getLogger("hub.api")
MAX_OPERATION_ID = 128
TOO_MANY_SUBSCRIPTIONS = "TOO_MANY_SUBSCRIPTIONS"
GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
_REQUEST_ERROR = "hub.request_error"  # in the ASGI scope: the answer is a request error (nothing ran)


class CodedTransportWS(BaseGraphQLTransportWSHandler[Context, None]):
    async def handle_message(self, message: Message) -> None:
        problem = _invalid(message)
        if problem is not None:
            await self.handle_invalid_message(problem)
            return
        await super().handle_message(message)

    async def send_message(self, message: Message) -> None:
        if message.get("type") in ("error", "next"):
            _code_errors(message)
        await super().send_message(message)

    async def handle_task_exception(self, error: Exception) -> None:
        if isinstance(error, WebSocketDisconnected):
            # A subscriber that went away while a push was on its way: a client leaving, not a failure
            # (strawberry logs it as an ERROR with its traceback).
            log.debug("subscription: the subscriber disconnected during a push")
            return
        await super().handle_task_exception(error)


def _invalid(message: Any) -> str | None:
    """Why a graphql-transport-ws message is not one (a close reason, at most 123 bytes), or None."""
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return "a message must be a JSON object with a string type"
    if message["type"] not in ("subscribe", "complete"):
        return None
    given = message.get("id")
    if not isinstance(given, str) or not 0 < len(given) <= MAX_OPERATION_ID:
        return f"a {message['type']} message needs an id: a string of 1 to {MAX_OPERATION_ID} characters"
    if message["type"] == "complete":
        return None
    payload = message.get("payload")
    if not isinstance(payload, dict):
        return "a subscribe message needs a payload object"
    if not isinstance(payload.get("query"), str) or not payload["query"].strip():
        return "payload.query must be a non-empty string"
    for name, kind in (("variables", dict), ("extensions", dict), ("operationName", str)):
        if not isinstance(payload.get(name), kind | None):
            return f"payload.{name} must be {'a string' if kind is str else 'an object'} or null"
    return None


def _code_errors(message: Mapping[str, Any]) -> None:
    payload = message.get("payload")
    errors = payload.get("errors") if isinstance(payload, dict) else payload
    for error in errors if isinstance(errors, list) else ():
        if not isinstance(error, dict):
            continue
        extensions = error.get("extensions") or {}
        if "code" not in extensions:
            limited = error.get("message") == "Subscription limit reached"
            error["extensions"] = {**extensions, "code": TOO_MANY_SUBSCRIPTIONS if limited else "BAD_REQUEST"}


class EdgeGraphQL(GraphQL[Context, None]):
    """strawberry's ASGI view, held to the rules above. HubGraphQL (hub.api.app) builds on it."""

    graphql_transport_ws_handler_class = CodedTransportWS

    def decode_json(self, data: str | bytes) -> object:
        return decode_json(data)

    def encode_json(self, data: object) -> str:
        # orjson: about ten times the speed of the standard library's encoder (bench/RESULTS.md). As
        # text: strawberry sends bytes as a binary websocket frame, and graphql-ws clients want text.
        return orjson.dumps(data).decode()

    async def render_graphql_ide(self, request: Request) -> Response:
        return graphiql.page(request)  # every asset served by the hub (hub.api.graphiql), none from a CDN

    async def parse_http_body(self, request: AsyncHTTPRequestAdapter) -> GraphQLRequestData:  # type: ignore[override]
        if request.method == "GET":
            data: Any = self.parse_query_params(request.query_params)
        elif not json_content_type(request.content_type):
            raise RequestError(415, "send the operation as JSON: Content-Type: application/json")
        else:
            data = decode_body(await request.get_body())
        return request_data(data)

    async def execute_single(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Response,
        context: Context,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        allowed = {OperationType.QUERY, OperationType.MUTATION} if request_adapter.method == "POST" else set()
        if request_adapter.method == "GET" and self.allow_queries_via_get:
            allowed = {OperationType.QUERY}
        try:
            return await self.schema.execute(
                request_data.query,
                root_value=root_value,
                variable_values=request_data.variables,
                context_value=context,
                operation_name=request_data.operation_name,
                allowed_operation_types=allowed,
                operation_extensions=request_data.extensions,
            )
        except CannotGetOperationTypeError as exc:
            raise RequestError(400, exc.as_http_error_reason()) from None
        except InvalidOperationTypeError as exc:
            if exc.operation_type is OperationType.SUBSCRIPTION:
                raise RequestError(
                    400, "subscriptions run over the websocket (graphql-transport-ws), not over HTTP"
                ) from None
            raise RequestError(405, f"{exc.operation_type.value}s need POST") from None
        except MissingQueryError:
            raise RequestError(400, "no GraphQL document in the request") from None

    async def process_result(self, request: Request, result: ExecutionResult) -> GraphQLHTTPResponse:
        answer = await super().process_result(request, result)
        if _request_error(result):
            request.scope[_REQUEST_ERROR] = True
            if wants_graphql_response(request.headers.get("accept")):
                answer.pop("data", None)  # type: ignore[misc]
        return answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        response: Response
        request = Request(scope=scope, receive=receive)
        graphql_response = wants_graphql_response(request.headers.get("accept"))
        try:
            response = await self.run(request)
        except HTTPException as exc:
            response = refusal(exc.status_code, exc.reason, getattr(exc, "code", None))
        except Exception:
            log.exception("unexpected error answering %s %s", scope.get("method"), scope.get("path"))
            response = refusal(500, "Unexpected error; the hub's log has the details.", "INTERNAL")
        if graphql_response and response.media_type == "application/json":
            response.headers["content-type"] = f"{GRAPHQL_RESPONSE_JSON}; charset=utf-8"
            if scope.get(_REQUEST_ERROR) and response.status_code == 200:
                response.status_code = 400
        await response(scope, receive, send)


def _request_error(result: ExecutionResult) -> bool:
    """Nothing ran: the document did not parse or validate, or the variables did not coerce (errors
    without a path, no data). An error in a resolver has a path, even when it nulls the whole answer."""
    return result.data is None and bool(result.errors) and all(e.path is None for e in result.errors or ())


def wants_graphql_response(accept: str | None) -> bool:
    """Whether Accept prefers application/graphql-response+json to application/json (a tie goes to the
    newer type, as the spec recommends clients to list both). No Accept, or only wildcards: no."""
    best: dict[str, float] = {}
    for part in (accept or "").split(","):
        media, *params = (p.strip() for p in part.split(";"))
        weight = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        media = media.lower()
        best[media] = max(best.get(media, 0.0), weight)
    ours = best.get(GRAPHQL_RESPONSE_JSON, 0.0)
    return ours > 0 and ours >= best.get("application/json", 0.0)


def refusal(status: int, message: str, code: str | None = None) -> JSONResponse:
    headers = {"Allow": "POST"} if status == 405 else None
    body = http_error_body(message, code or code_for(status))
    return JSONResponse(body, status_code=status, headers=headers)
