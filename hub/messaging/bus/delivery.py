"""What a message holds and how its events reach a handler, the same in both engines.

A message holds one CloudEvent (structured mode: a JSON object) or, on a batch flow's queue, a pack of
them (the CloudEvents batch format: a JSON array, content type application/cloudevents-batch+json),
which the outbox relay writes so that a daily flow of a million records is a thousand messages, not a
million. A pack is applied as one batch when the handler takes batches; when that fails, or the handler
does not, event by event, so every event that can be applied is (the rest are applied again with the
whole message's retry, and skipped there by the idempotent consumer).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import orjson

from hub.events import CloudEvent, MalformedEvent
from hub.messaging.bus.base import BatchHandler, Handler
from hub.ports import PermanentError

log = logging.getLogger(__name__)

PACK_CONTENT_TYPE = "application/cloudevents-batch+json"


def pack(bodies: Sequence[bytes]) -> bytes:
    """A pack of events from their stored JSON (no parse, no re-encode)."""
    return b"[" + b",".join(bodies) + b"]"


def read(body: bytes) -> list[CloudEvent]:
    """The events a message holds; MalformedEvent when it is neither an event nor a pack of them."""
    if body[:1] != b"[" and body.lstrip()[:1] != b"[":
        return [CloudEvent.from_json(body)]
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedEvent(f"body is not JSON: {exc}") from exc
    if not raw:
        raise MalformedEvent("an empty pack of events")
    return [CloudEvent.from_dict(item) for item in raw]


async def deliver(handler: Handler, events: Sequence[CloudEvent]) -> None:
    """Apply the events, in order; raise when one could not be applied: a permanent failure only when
    every failure was permanent (then retrying cannot help), else the first that may pass on a retry."""
    if len(events) > 1 and isinstance(handler, BatchHandler):
        try:
            await handler.batch(events)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.info("a batch of %d failed, applying them one by one: %s", len(events), exc)
    failures: list[Exception] = []
    for event in events:
        try:
            await handler(event)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failures.append(exc)
    if failures:
        retryable = [e for e in failures if not isinstance(e, (PermanentError, MalformedEvent))]
        raise (retryable or failures)[0]
