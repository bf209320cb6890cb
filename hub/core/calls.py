"""Calling a system: bounded by its timeout, and a failure told as SYSTEM_UNAVAILABLE naming it.

Callers read only what an adapter chose to say (AdapterError) or the kind of failure; the whole error
goes to the log, so an answer never carries SQL, paths or stack traces."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import TypeVar

from hub.core.errors import SystemUnavailable
from hub.observability.metrics import system_call
from hub.ports import AdapterError
from hub.waiting import bounded

log = logging.getLogger(__name__)
T = TypeVar("T")


def why(exc: BaseException, timeout: float) -> str:
    """What a caller may read about a failed call."""
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g}s"
    if isinstance(exc, AdapterError):
        return exc.reason
    return type(exc).__name__


async def call(system: str, timeout: float, what: str, awaitable: Awaitable[T]) -> T:
    """Await a system's answer for at most `timeout` seconds; SystemUnavailable naming it otherwise."""
    try:
        return await system_call(system, what, bounded(awaitable, timeout), timeout)  # counted, timed, traced
    except Exception as exc:
        log.warning("system %s: %s failed", system, what, exc_info=exc)
        raise SystemUnavailable(
            f"system {system!r} is unavailable ({why(exc, timeout)})", system=system
        ) from None
