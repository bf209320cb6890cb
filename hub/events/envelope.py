"""CloudEvents 1.0 envelopes: the one message shape on the bus."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

SPEC_VERSION = "1.0"


class MalformedEvent(ValueError):
    """A message that is not a CloudEvent the hub can read; it goes to the dead-letter queue."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True, slots=True)
class CloudEvent:
    type: str
    source: str
    data: dict[str, Any]
    subject: str | None = None
    id: str = field(default_factory=new_id)
    time: datetime = field(default_factory=utcnow)
    correlationid: str | None = None
    # W3C trace context, as the CloudEvents distributed-tracing extension carries it (hub.observability).
    traceparent: str | None = None
    tracestate: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "specversion": SPEC_VERSION,
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "time": self.time.isoformat(),
            "datacontenttype": "application/json",
            "data": self.data,
        }
        if self.subject is not None:
            out["subject"] = self.subject
        if self.correlationid is not None:
            out["correlationid"] = self.correlationid
        if self.traceparent is not None:
            out["traceparent"] = self.traceparent
            if self.tracestate:
                out["tracestate"] = self.tracestate
        return out

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, raw: Any) -> CloudEvent:
        if not isinstance(raw, dict):
            raise MalformedEvent("a CloudEvent must be a JSON object")
        if raw.get("specversion") != SPEC_VERSION:
            raise MalformedEvent(f"specversion must be {SPEC_VERSION!r}, got {raw.get('specversion')!r}")
        for name in ("id", "source", "type"):
            if not isinstance(raw.get(name), str) or not raw[name]:
                raise MalformedEvent(f"attribute {name!r} is missing or not a string")
        data = raw.get("data", {})
        if not isinstance(data, dict):
            raise MalformedEvent("attribute 'data' must be a JSON object")
        try:
            time = datetime.fromisoformat(raw["time"]) if raw.get("time") else utcnow()
        except (TypeError, ValueError) as exc:
            raise MalformedEvent(f"attribute 'time' is not RFC 3339: {raw.get('time')!r}") from exc
        if time.tzinfo is None:
            time = time.replace(tzinfo=UTC)
        return cls(
            id=raw["id"],
            source=raw["source"],
            type=raw["type"],
            subject=raw.get("subject"),
            time=time,
            data=data,
            correlationid=raw.get("correlationid"),
            traceparent=_text(raw.get("traceparent")),
            tracestate=_text(raw.get("tracestate")),
        )

    @classmethod
    def from_json(cls, body: bytes | str) -> CloudEvent:
        try:
            raw = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise MalformedEvent(f"body is not JSON: {exc}") from exc
        return cls.from_dict(raw)


def _text(value: Any) -> str | None:
    """An optional string attribute; anything else is left out (it must not make the event unreadable)."""
    return value if isinstance(value, str) and value else None
