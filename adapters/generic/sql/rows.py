"""Rows become records: plain JSON-friendly values that the mapping's paths and transforms read.

The hub caches records, merges them and answers them as GraphQL JSON, so a record holds only
str, int, float, bool, None, lists and dicts: no Decimal, datetime, UUID or bytes.
"""

from __future__ import annotations

import base64
import enum
import math
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from typing import Any, Literal


@dataclass(frozen=True, slots=True)
class Converter:
    decimals: Literal["number", "text"] = "number"
    naive_zone: tzinfo = UTC  # what a timestamp without a zone means

    def value(self, v: Any) -> Any:
        if v is None or isinstance(v, (str, bool, int)):
            return v
        if isinstance(v, float):
            # JSON has no NaN or Infinity: no number is better than a made-up one.
            return v if math.isfinite(v) else None
        if isinstance(v, Decimal):
            return self._decimal(v)
        if isinstance(v, datetime):
            aware = v if v.tzinfo is not None else v.replace(tzinfo=self.naive_zone)
            return aware.astimezone(UTC).isoformat()
        if isinstance(v, date):
            return v.isoformat()
        if isinstance(v, time):
            return v.isoformat()
        if isinstance(v, timedelta):
            return v.total_seconds()
        if isinstance(v, (bytes, bytearray, memoryview)):
            return base64.b64encode(bytes(v)).decode("ascii")  # lossless, and text
        if isinstance(v, uuid.UUID):
            return str(v)
        if isinstance(v, enum.Enum):
            return self.value(v.value)
        if isinstance(v, Mapping):  # JSON columns
            return {str(k): self.value(item) for k, item in v.items()}
        if isinstance(v, (list, tuple, set, frozenset)):  # array columns
            return [self.value(item) for item in v]
        return str(v)  # network addresses, ranges, driver-specific types: their text form

    def _decimal(self, v: Decimal) -> Any:
        if not v.is_finite():
            return None
        if self.decimals == "text":
            return str(v)
        # Whole values (NUMERIC(12,0) ids, 100.00) stay exact as ints; others become floats.
        return int(v) if v == v.to_integral_value() else float(v)

    def record(self, row: Mapping[Any, Any]) -> dict[str, Any]:
        return {str(name): self.value(v) for name, v in row.items()}


def gather(
    rows: Iterable[Mapping[Any, Any]],
    key_of: Callable[[Any], Any],
    key_column: str,
    collect: Sequence[str],
    converter: Converter,
) -> dict[Any, dict[str, Any]]:
    """Records by matched key: the first row of a key gives its columns, and the `collect` columns
    become the list of their distinct non-null values over all the key's rows, in row order."""
    out: dict[Any, dict[str, Any]] = {}
    for row in rows:
        raw_key = row[key_column]
        if raw_key is None:
            continue
        key = key_of(raw_key)
        if key is None:
            continue
        record = out.get(key)
        if record is None:
            record = converter.record(row)
            for name in collect:
                value = record[name]
                record[name] = [] if value is None else [value]
            out[key] = record
            continue
        for name in collect:
            value = converter.value(row[name])
            if value is not None and value not in record[name]:
                record[name].append(value)
    return out
