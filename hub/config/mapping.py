"""The deployment mapping (mappings/hub.yaml): systems and their field maps, roles, identity,
survivorship, flows and the decisions' default actions. Cross-references (roles, systems, fields) are
checked in hub.config.checks."""

from __future__ import annotations

import enum
import re
from datetime import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hub.config import transforms
from hub.model import GOLDEN_ID, Channel

NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
PATH = re.compile(r"^[A-Za-z0-9_$@-]+(\.([A-Za-z0-9_$@-]+|\*))*$")
TEMPLATE_FIELD = re.compile(r"\{([^{}]+)\}")


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


def _check_path(v: str) -> str:
    if not PATH.match(v):
        raise ValueError(f"{v!r} is not a path: field names joined by '.', '*' for every item of a list")
    return v


class FieldMap(Strict):
    """Where a unified field's value is in a system's record, and how it is transformed."""

    path: str | None = None  # dotted; a number picks a list item, '*' maps every item
    template: str | None = None  # text with {path} placeholders, e.g. "{firstName} {lastName}"
    transform: list[Any] = Field(default_factory=list)  # names or {name: argument}, applied in order
    default: Any = None  # used when the record has no value

    @field_validator("path")
    @classmethod
    def _path(cls, v: str | None) -> str | None:
        return None if v is None else _check_path(v)

    @field_validator("template")
    @classmethod
    def _template(cls, v: str | None) -> str | None:
        if v is not None:
            fields = TEMPLATE_FIELD.findall(v)
            if not fields:
                raise ValueError("a template names at least one {field}")
            for f in fields:
                _check_path(f)
        return v

    @field_validator("transform", mode="before")
    @classmethod
    def _transforms(cls, v: Any) -> Any:
        items = v if isinstance(v, list) else [v]
        for spec in items:
            transforms.build(spec)  # raises ValueError with the reason
        return items

    @model_validator(mode="after")
    def _one_source(self) -> FieldMap:
        if (self.path is None) == (self.template is None):
            raise ValueError("give exactly one of path or template")
        return self


class SystemConfig(Strict):
    adapter: str = Field(description="entry point name in group markiting_hub.adapters")
    # The key kind the system is read by: `id` (the golden id), email, phone, customer, cookie, or a
    # system's name (that system's own customer id, e.g. `crm` for CRM-000123).
    key: str = GOLDEN_ID
    # unified field -> where it is in the system's record (a path, or a FieldMap)
    profile: dict[str, str | FieldMap] = Field(default_factory=dict)
    updated_at: str | None = Field(None, description="path of the record's last-change time (newest wins)")
    timeout_seconds: float = Field(2.0, gt=0, le=60)
    essential: bool = Field(False, description="the hub refuses to start while this system is down")
    config: dict[str, Any] = Field(default_factory=dict)

    @field_validator("profile")
    @classmethod
    def _short_paths(cls, v: dict[str, str | FieldMap]) -> dict[str, str | FieldMap]:
        return {k: FieldMap(path=_check_path(m)) if isinstance(m, str) else m for k, m in v.items()}

    @field_validator("updated_at")
    @classmethod
    def _updated(cls, v: str | None) -> str | None:
        return None if v is None else _check_path(v)

    def fields(self) -> dict[str, FieldMap]:
        return {k: m for k, m in self.profile.items() if isinstance(m, FieldMap)}


class Flow(Strict):
    name: str
    source: str
    destination: str
    events: list[str] = Field(min_length=1, description="routing-key patterns (AMQP topic syntax)")
    mode: FlowMode = FlowMode.REALTIME
    at: time = time(2, 0)  # UTC time of day for daily and weekly delivery
    weekday: Weekday = Weekday.monday
    # The destination reads the flow's queue itself, over AMQP (an external system on the bus): the hub
    # declares the queue, binds it and fills it, and never consumes it. Realtime flows only.
    external: bool = False

    @field_validator("weekday", mode="before")
    @classmethod
    def _weekday_by_name(cls, v: object) -> object:
        # Architects write `weekday: monday` (README); 0-6 (Monday = 0) is accepted as well.
        if isinstance(v, str) and not v.strip().isdigit():
            name = v.strip().lower()
            if name not in Weekday.__members__:
                raise ValueError(f"{v!r} is not a weekday: {', '.join(Weekday.__members__)} (or 0-6)")
            return Weekday[name]
        return v

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

    @model_validator(mode="after")
    def _external_is_realtime(self) -> Flow:
        if self.external and self.mode is not FlowMode.REALTIME:
            raise ValueError("an external flow is realtime: its destination reads events one by one")
        return self

    @property
    def queue(self) -> str:
        # The queue is named after the flow, not its mode: switching mode keeps what it holds.
        return f"flow.{self.name}"


class Identity(Strict):
    default_phone_region: str | None = None


Survivorship = list[str] | Literal["newest"]


class FallbackAction(Strict):
    """A default action: answered, marked fallback, when CM does not decide within the NBA budget."""

    offer_id: str = Field(min_length=1, max_length=200, description="an offer in CM's catalog")
    title: str = Field(min_length=1, max_length=500)
    # The channels it may be offered in; every channel when absent.
    channels: list[Channel] | None = Field(None, min_length=1)
    priority: float = 0.0  # higher first; ties keep the order of the list

    def fits(self, channel: Channel | None) -> bool:
        return channel is None or self.channels is None or channel in self.channels


class DecisionDefaults(Strict):
    # Answered in CM's place when it has not decided within HUB_NBA_BUDGET_MS (or cannot answer).
    fallback: list[FallbackAction] = Field(default_factory=list)


class HubMapping(Strict):
    identity: Identity = Identity()
    # role (hub.roles.ROLES) -> the system that plays it, or a list for roles many may play
    roles: dict[str, str | list[str]] = Field(default_factory=dict)
    systems: dict[str, SystemConfig]
    # unified field -> systems in order of trust (the first with a value wins), or "newest"
    survivorship: dict[str, Survivorship] = Field(default_factory=dict)
    flows: list[Flow] = Field(default_factory=list)
    decisions: DecisionDefaults = DecisionDefaults()

    @field_validator("systems")
    @classmethod
    def _system_names(cls, v: dict[str, SystemConfig]) -> dict[str, SystemConfig]:
        for name in v:
            if not NAME.match(name) or len(name) > 60:
                raise ValueError(f"system name {name!r}: lower-case words joined by - or _, at most 60")
        return v

    def players(self, role: str) -> list[str]:
        """The systems named for a role under `roles:` (implied players are added by the registry)."""
        named = self.roles.get(role)
        if named is None:
            return []
        return [named] if isinstance(named, str) else list(named)
