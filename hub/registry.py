"""Builds adapters from the mapping through entry points; the core never imports a concrete adapter."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, cast

from sqlalchemy.ext.asyncio import AsyncEngine

from hub.config import Settings
from hub.mapping.loader import Located, MappingError, load_located, validate
from hub.mapping.models import HubMapping
from hub.ports import (
    Adapter,
    AdapterContext,
    ContactRegistry,
    DecisionEngine,
    EventConsumer,
    ProfileSource,
)

ENTRY_POINT_GROUP = "markiting_hub.adapters"
HUB_SOURCE = "hub"


def adapter_factories() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


@dataclass(slots=True)
class Systems:
    mapping: HubMapping
    adapters: dict[str, Adapter]
    contact_registry: ContactRegistry
    decision_engine: DecisionEngine
    profile_sources: dict[str, ProfileSource] = field(default_factory=dict)
    consumers: dict[str, EventConsumer] = field(default_factory=dict)

    async def start(self) -> None:
        for adapter in self.adapters.values():
            await adapter.start()

    async def close(self) -> None:
        for adapter in self.adapters.values():
            await adapter.close()


def load_mapping(settings: Settings) -> tuple[HubMapping, Located]:
    located = load_located(settings.mappings_dir / "hub.yaml")
    mapping = validate(located, HubMapping)
    check_references(mapping, located)
    return mapping, located


def check_references(mapping: HubMapping, located: Located) -> None:
    problems = []
    names = set(mapping.systems)
    for role in ("contact_registry", "decision_engine"):
        if getattr(mapping.roles, role) not in names:
            problems.append(
                located.problem(("roles", role), f"no system named {getattr(mapping.roles, role)!r}")
            )
    for field_name, order in mapping.survivorship.items():
        for i, system in enumerate(order):
            if system not in names:
                problems.append(
                    located.problem(("survivorship", field_name, i), f"no system named {system!r}")
                )
    seen: set[str] = set()
    for i, flow in enumerate(mapping.flows):
        if flow.name in seen:
            problems.append(located.problem(("flows", i, "name"), f"duplicate flow {flow.name!r}"))
        seen.add(flow.name)
        if flow.destination not in names:
            problems.append(
                located.problem(("flows", i, "destination"), f"no system named {flow.destination!r}")
            )
        if flow.source != HUB_SOURCE and flow.source not in names:
            problems.append(located.problem(("flows", i, "source"), f"no system named {flow.source!r}"))
    if problems:
        raise MappingError(problems)


def build_systems(mapping: HubMapping, located: Located, settings: Settings, engine: AsyncEngine) -> Systems:
    factories = adapter_factories()
    adapters: dict[str, Adapter] = {}
    problems = []
    for name, system in mapping.systems.items():
        ep = factories.get(system.adapter)
        if ep is None:
            known = ", ".join(sorted(factories)) or "none installed"
            problems.append(
                located.problem(
                    ("systems", name, "adapter"), f"unknown adapter {system.adapter!r} (known: {known})"
                )
            )
            continue
        adapters[name] = ep.load()(AdapterContext(name, settings, engine, system.config))
    if problems:
        raise MappingError(problems)

    def role(path: tuple[str | int, ...], system: str, port: type) -> Any:
        adapter = adapters[system]
        if not isinstance(adapter, port):
            problems.append(located.problem(path, f"system {system!r} does not implement {port.__name__}"))
        return adapter

    registry = role(("roles", "contact_registry"), mapping.roles.contact_registry, ContactRegistry)
    engine_ = role(("roles", "decision_engine"), mapping.roles.decision_engine, DecisionEngine)
    consumers = {}
    for i, flow in enumerate(mapping.flows):
        consumers[flow.destination] = role(("flows", i, "destination"), flow.destination, EventConsumer)
    if problems:
        raise MappingError(problems)
    sources: dict[str, ProfileSource] = {
        n: cast(ProfileSource, a)
        for n, a in adapters.items()
        if isinstance(a, ProfileSource) and mapping.systems[n].profile
    }
    return Systems(mapping, adapters, registry, engine_, sources, consumers)

