"""A GraphQL request over HTTP, read strictly: anything that is not one operation as the GraphQL over
HTTP spec describes it is refused with a 4xx and a JSON answer whose `errors[0].extensions.code` says
why, never a 500.

- POST needs `Content-Type: application/json` (415 UNSUPPORTED_MEDIA_TYPE otherwise) and a body that is
  UTF-8 JSON (orjson: nesting deeper than 1024 is refused while parsing, in C, without recursion) holding
  one object: a JSON array is a batch, and batching is off (400 BATCHING_NOT_SUPPORTED); `[]`, `1`,
  `"x"`, `null` are 400 BAD_REQUEST.
- `query` is a non-empty string, `variables` and `extensions` objects or null, `operationName` a string
  or null (GET: the same, from the query string).
"""

from __future__ import annotations

from typing import Any

import orjson
from cross_web import HTTPException
from strawberry.http import GraphQLRequestData

BAD_REQUEST = "BAD_REQUEST"
UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
BATCHING_NOT_SUPPORTED = "BATCHING_NOT_SUPPORTED"
_CODES = {
    400: BAD_REQUEST,
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    408: "REQUEST_TIMEOUT",
    413: "PAYLOAD_TOO_LARGE",
    415: UNSUPPORTED_MEDIA_TYPE,
}


class RequestError(HTTPException):
    """A request the hub refuses before running anything: an HTTP status and a stable code."""

    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(status, message)
        self.code = code or code_for(status)


def code_for(status: int) -> str:
    return _CODES.get(status, BAD_REQUEST)


def decode_json(data: str | bytes) -> Any:
    """JSON as the hub reads it: strict UTF-8, no NaN, nesting bounded (orjson.JSONDecodeError is a
    json.JSONDecodeError, which strawberry's own callers expect)."""
    return orjson.loads(data)


def decode_body(body: bytes) -> Any:
    if not body.strip():
        raise RequestError(400, "the request body is empty: send one GraphQL operation as a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        reason = str(exc)
        if "UTF-8" in reason or "surrogate" in reason:
            raise RequestError(400, "the request body is not valid UTF-8") from None
        if "depth" in reason or "recursion" in reason:
            raise RequestError(400, "the request body is nested too deeply") from None
        raise RequestError(400, "the request body is not valid JSON") from None


def request_data(data: Any) -> GraphQLRequestData:
    """One operation from the decoded body (or query string), its parts checked by type."""
    if isinstance(data, list):
        raise RequestError(
            400, "batched operations are not supported: send one operation as a JSON object",
            BATCHING_NOT_SUPPORTED,
        )
    if not isinstance(data, dict):
        raise RequestError(400, 'the request body must be a JSON object: {"query": "…", "variables": {…}}')
    query = data.get("query")
    if not isinstance(query, str) or not query.strip():
        raise RequestError(400, "`query` must be a non-empty string holding the GraphQL document")
    variables = data.get("variables")
    if not isinstance(variables, dict | None):
        raise RequestError(400, "`variables` must be an object or null")
    operation_name = data.get("operationName")
    if not isinstance(operation_name, str | None):
        raise RequestError(400, "`operationName` must be a string or null")
    extensions = data.get("extensions")
    if not isinstance(extensions, dict | None):
        raise RequestError(400, "`extensions` must be an object or null")
    return GraphQLRequestData(
        query=query,
        variables=variables,
        operation_name=operation_name,
        extensions=extensions,
        protocol="http",
    )


def json_content_type(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json"
