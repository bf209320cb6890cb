"""The GraphQL view's edges, both transports: how a request is read, which operations each transport
runs, and how a refusal is answered.

HTTP: the body is read strictly (hub.api.bodies); queries over GET or POST, mutations over POST only
(405 over GET), subscriptions never (400: they run over the websocket); an unknown operationName is a
400; every refusal is a JSON answer with `errors[0].extensions.code`.

graphql-transport-ws: a message that is not an object with a string `type`, or a `subscribe` whose
payload is not `{query: string, variables?: object, operationName?: string, extensions?: object}`,
closes the socket with 4400 (the protocol's answer to an invalid message); every error the socket sends
(`error` and `next` payloads) carries `extensions.code`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from cross_web import AsyncHTTPRequestAdapter, HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send
from strawberry.asgi import GraphQL
from strawberry.exceptions import MissingQueryError
from strawberry.http import GraphQLRequestData
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler
from strawberry.subscriptions.protocols.graphql_transport_ws.types import Message
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        response: Response
        try:
            response = await self.run(Request(scope=scope, receive=receive))
        except HTTPException as exc:
            response = refusal(exc.status_code, exc.reason, getattr(exc, "code", None))
        except Exception:
            log.exception("unexpected error answering %s %s", scope.get("method"), scope.get("path"))
            response = refusal(500, "Unexpected error; the hub's log has the details.", "INTERNAL")
        await response(scope, receive, send)


def refusal(status: int, message: str, code: str | None = None) -> JSONResponse:
    headers = {"Allow": "POST"} if status == 405 else None
    body = http_error_body(message, code or code_for(status))
    return JSONResponse(body, status_code=status, headers=headers)
