"""Which cached reads an answer was made of.

The API keeps whole answers (hub.api.answers) and serves one again only while every read it was made of
is still the very value in its cache: a read that expired, was cleared by a change announcement or by a
reload, or was read again since, makes the answer stale, with no TTL or invalidation of its own to keep
right. So every read behind a cacheable answer must come through a cache that notes it here, and a read
that does not (the store asked directly, a decision made with pending events, a fallback) says so with
`uncacheable()`.

Facts that never change once true (a customer exists; a key belongs to a customer) need no note.

The recorder is per request, in a context variable: the DataLoaders' batch tasks inherit it.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

_MISSING = object()


class Reads:
    """The cached reads one request used; `uncacheable()` when any read bypassed a cache."""

    __slots__ = ("cacheable", "used")

    def __init__(self) -> None:
        self.used: list[tuple[Mapping[Any, Any], Any, Any]] = []
        self.cacheable = True

    def note(self, cache: Mapping[Any, Any], key: Any, value: Any) -> None:
        self.used.append((cache, key, value))

    def still_current(self) -> bool:
        """Is every read still the value its cache holds now (not expired, cleared or replaced)?"""
        return all(cache.get(key, _MISSING) is value for cache, key, value in self.used)


_current: ContextVar[Reads | None] = ContextVar("hub_reads", default=None)


def recording(reads: Reads | None) -> Any:
    """Record the reads of the current request into `reads` (returns the token to reset)."""
    return _current.set(reads)


def stop_recording(token: Any) -> None:
    _current.reset(token)


def current() -> Reads | None:
    return _current.get()


def note(cache: Mapping[Any, Any], key: Any, value: Any) -> None:
    reads = _current.get()
    if reads is not None:
        reads.note(cache, key, value)


def uncacheable() -> None:
    reads = _current.get()
    if reads is not None:
        reads.cacheable = False
