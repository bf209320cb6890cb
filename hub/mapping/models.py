"""The deployment mapping (mappings/hub.yaml): systems, identity, survivorship and flows."""

from __future__ import annotations

import enum
import re
from datetime import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

NAME = re.compile(r"^[a-z][a-z0-9_-]*$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FlowMode(enum.StrEnum):
    REALTIME = "realtime"
    DAILY = "daily"
    WEEKLY = "weekly"


class Weekday(enum.IntEnum):
    monday = 0
    tuesday = 1
    wednesday = 2
    thursday = 3
    friday = 4
    saturday = 5
    sunday = 6


class SystemConfig(Strict):
    adapter: str = Field(description="entry point name in group markiting_hub.adapters")
    # unified field -> the system's field in its profile
    profile: dict[str, str] = Field(default_factory=dict)
    config: dict[str, Any] = Field(default_factory=dict)


class Flow(Strict):
    name: str
    source: str
    destination: str
    events: list[str] = Field(min_length=1, description="routing-key patterns (AMQP topic syntax)")
    mode: FlowMode = FlowMode.REALTIME
    at: time = time(2, 0)  # UTC time of day for daily and weekly delivery
    weekday: Weekday = Weekday.monday

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME.match(v):
            raise ValueError("flow names are lower-case words joined by - or _")
        return v

    @field_validator("events")
    @classmethod
    def _patterns(cls, v: list[str]) -> list[str]:
        for p in v:
            if not p or any(w == "" for w in p.split(".")):
                raise ValueError(f"{p!r} is not a routing-key pattern")
        return v

    @property
    def queue(self) -> str:
        # The queue is named after the flow, not its mode: switching mode keeps what it holds.
        return f"flow.{self.name}"


class Identity(Strict):
    default_phone_region: str | None = None


class Roles(Strict):
    """Which system plays each role the contact scenario needs."""

    contact_registry: str = "crm"
    decision_engine: str = "cm"


class HubMapping(Strict):
    identity: Identity = Identity()
    roles: Roles = Roles()
    systems: dict[str, SystemConfig]
    # unified field -> systems in order of trust; the first with a value wins
    survivorship: dict[str, list[str]] = Field(default_factory=dict)
    flows: list[Flow] = Field(default_factory=list)
