"""JSON columns through orjson, with the standard library behind it for what orjson refuses.

CM's profile of a customer (its counters, offers and the event ids it remembers: a few KB) is decoded on
every decision and view, and decoded and encoded again on every consumed batch; the standard library's
json took a tenth of a batch's CPU (bench/RESULTS.md). What orjson refuses and json takes (an integer
beyond 64 bits, a NaN written by json before) still goes through json, so no stored value becomes
unreadable or unwritable.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def dumps(value: Any) -> str:
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # orjson.JSONEncodeError is one
        return json.dumps(value)


def loads(text: str | bytes) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


# The engine's JSON columns, on every backend.
CODEC: dict[str, Any] = {"json_serializer": dumps, "json_deserializer": loads}
