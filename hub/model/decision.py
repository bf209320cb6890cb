"""What CM decides: offers and next best actions."""

from __future__ import annotations

from dataclasses import dataclass

from hub.model.contact import Channel


@dataclass(frozen=True, slots=True)
class Offer:
    id: str
    title: str
    topics: tuple[str, ...]
    channels: tuple[Channel, ...]


@dataclass(frozen=True, slots=True)
class NextBestAction:
    offer_id: str
    title: str
    channel: Channel
    priority: float
    score: float
    reason: str
    decision_id: str
    # A configured default action, answered because the decision engine did not decide in time (or
    # failed); CM's real decision follows to the subscribers when it arrives.
    fallback: bool = False


@dataclass(frozen=True, slots=True)
class DecisionRequest:
    """One customer's NBAs in one channel; a decision engine answers a batch of them at once."""

    customer_id: str
    channel: Channel | None
    limit: int
