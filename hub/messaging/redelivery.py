"""The redelivery policy both bus engines follow: retry with exponential back-off, or dead-letter.

A message that can never succeed (PermanentError, an unreadable event) is dead-lettered at once; any
other failure is retried after `backoff * 2**(attempt-1)` seconds (capped), until the delivery limit.
"""

from __future__ import annotations

from dataclasses import dataclass

from hub.events import MalformedEvent
from hub.ports import PermanentError


@dataclass(frozen=True, slots=True)
class Verdict:
    dead: bool
    delay: float  # seconds before the next attempt (0 when dead)
    reason: str  # "ExceptionClass: message", kept with the dead letter


def reason_of(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True, slots=True)
class RedeliveryPolicy:
    delivery_limit: int
    backoff: float
    max_backoff: float = 60.0

    def after(self, exc: BaseException, attempts: int) -> Verdict:
        """What to do with a message whose `attempts`-th delivery (from 1) raised `exc`."""
        reason = reason_of(exc)
        if isinstance(exc, (PermanentError, MalformedEvent)) or attempts >= self.delivery_limit:
            return Verdict(True, 0.0, reason)
        return Verdict(False, min(self.backoff * 2 ** (attempts - 1), self.max_backoff), reason)
