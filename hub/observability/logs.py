"""Logs: plain text by default, one JSON object per line with HUB_LOG_FORMAT=json.

Each JSON line holds the time, level, logger and message, and where known the trace and span ids (when
tracing is on), the GraphQL operation and the system being called (context variables the hub sets as it
works: hub.api.metrics and metrics.system_call). The hub never logs personal data or secrets; as a last
line of defence every line is also cleared of what looks like an email address, a bearer token, an API
key or a password in a URL, and uvicorn's access lines lose their query strings (a GET's variables may
hold a customer's key).
"""

from __future__ import annotations

import logging
import re
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

from hub.observability import tracing

OPERATION: ContextVar[str | None] = ContextVar("hub_log_operation", default=None)
SYSTEM: ContextVar[str | None] = ContextVar("hub_log_system", default=None)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_REDACTIONS = (
    (re.compile(r"[\w.+%-]+@[\w-]+(?:\.[\w-]+)+"), "<email>"),
    (re.compile(r"(?i)\b(bearer|basic)\s+[\w.~+/=-]+"), r"\1 <redacted>"),
    (re.compile(r"\bmkh_[0-9a-f]+_[\w-]{16,}"), "<api-key>"),  # hub.security.keys' format
    (re.compile(r"://([^:/@\s]+):[^@\s]+@"), r"://\1:<redacted>@"),
    (re.compile(r"(?i)\b(password|secret|token|api[_-]?key)=([^&\s]+)"), r"\1=<redacted>"),
)
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "color_message",  # uvicorn's copy of the message with terminal colours
}


def redact(text: str) -> str:
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) >= 3:
            args = list(record.args)
            args[2] = str(args[2]).split("?", 1)[0]  # the path without its query string
            record.args = tuple(args)
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        if tracing.ENABLED:
            ids = tracing.current_ids()
            if ids is not None:
                out["trace_id"], out["span_id"] = ids
        operation, system = OPERATION.get(), SYSTEM.get()
        if operation is not None:
            out["operation"] = operation
        if system is not None:
            out["system"] = system
        for key, value in record.__dict__.items():  # `extra=` fields (never the hub's personal data)
            if key not in _STANDARD and not key.startswith("_") and key not in out:
                out[key] = value if isinstance(value, int | float | bool) else redact(str(value))
        if record.exc_info:
            out["exception"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(out).decode()


class TextFormatter(logging.Formatter):
    """The plain format, with the same clearing of personal data."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def formatter(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else TextFormatter(TEXT_FORMAT)


def configure(log_format: str = "text", level: str | int = "INFO") -> None:
    """The root logger's one handler (stderr) in the chosen format; uvicorn's loggers go through it.
    Like logging.basicConfig, it leaves logging alone when someone configured it before (a test runner)."""
    root = logging.getLogger()
    if any(h.get_name() != "hub" for h in root.handlers):
        return
    root.setLevel(level.upper() if isinstance(level, str) else level)
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(log_format))
    handler.set_name("hub")
    for old in [h for h in root.handlers if h.get_name() == "hub"]:
        root.removeHandler(old)
    root.addHandler(handler)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers.clear()
        lg.propagate = True


def uvicorn_config(log_format: str, level: str) -> dict[str, Any]:
    """uvicorn's `log_config` (applied in every worker process it starts): the root logger as
    `configure` makes it."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"hub": {"()": f"{__name__}.JsonFormatter"} if log_format == "json"
                       else {"()": f"{__name__}.TextFormatter", "fmt": TEXT_FORMAT}},
        "handlers": {"hub": {"class": "logging.StreamHandler", "formatter": "hub"}},
        "root": {"handlers": ["hub"], "level": level.upper()},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": True},
            "httpx": {"level": "WARNING"},
        },
    }
