"""The registry: builds adapters from the mapping through entry points, checks their config and
ports against the roles table, and knows which system plays which role. The core never imports a
concrete adapter; it asks `Systems` for a role's player."""

from __future__ import annotations

import inspect
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.config.checks import HUB_SOURCE, check_references
from hub.config.loader import Loc, Located, MappingError, Problem, load_located, validate
from hub.config.mapping import HubMapping
from hub.config.settings import Settings
from hub.ports import Adapter, AdapterContext, ports_of, tables_of
from hub.roles import ROLES, Implied
from hub.store.db import Component
from hub.waiting import bounded

ENTRY_POINT_GROUP = "markiting_hub.adapters"
MAPPING_FILE = "hub.yaml"
ENV_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

log = logging.getLogger(__name__)


class EssentialSystemDown(RuntimeError):
    """A system the mapping marks `essential` cannot be reached: the hub does not start without it."""


def adapter_factories() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def installed_components() -> list[Component]:
    """The store components of every installed adapter that has tables of its own."""
    out = []
    for name, ep in sorted(adapter_factories().items()):
        component = component_of(name, ep.load())
        if component is not None:
            out.append(component)
    return out


def component_of(name: str, adapter_class: type) -> Component | None:
    metadata, migrations = tables_of(adapter_class)
    if metadata is None or migrations is None:
        return None
    return Component(name, metadata, Path(migrations))


def load_mapping(mappings_dir: Path) -> tuple[HubMapping, Located]:
    located = load_located(mappings_dir / MAPPING_FILE)
    mapping = validate(located, HubMapping)
    check_references(mapping, located)
    return mapping, located


def interpolate(value: Any, loc: Loc, located: Located, problems: list[Problem]) -> Any:
    """`${VAR}` in config strings comes from the environment, so secrets never sit in the mapping."""
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            found = os.environ.get(m.group(1))
            if found is None:
                problems.append(located.problem(loc, f"environment variable {m.group(1)} is not set"))
                return ""
            return found

        return ENV_VAR.sub(sub, value)
    if isinstance(value, Mapping):
        return {k: interpolate(v, (*loc, k), located, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, (*loc, i), located, problems) for i, v in enumerate(value)]
    return value


def validate_config(
    adapter_class: type,
    raw: Mapping[str, Any],
    loc: Loc,
    located: Located,
    problems: list[Problem],
    unset: list[Problem] | None = None,
) -> Any:
    """The adapter's typed config, or None with the problems (file, line, field) added. Unset
    environment variables go to `unset` when given (a lint without the deployment's secrets), else
    they are problems too."""
    missing: list[Problem] = []
    data = interpolate(raw, loc, located, missing)
    if missing:
        # An unset variable is the one thing to tell, not also the empty value it left.
        (problems if unset is None else unset).extend(missing)
        return None
    model: type[BaseModel] | None = getattr(adapter_class, "Config", None)
    if model is None:
        return dict(data)
    try:
        config = model.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            # Never echo the input: it may be a secret.
            path = tuple(p for p in err["loc"] if isinstance(p, (str, int)))
            problems.append(located.problem((*loc, *path), err["msg"]))
        return None
    literal = [path for path in _secret_paths(config) if not _from_environment(raw, path)]
    for path in literal:
        message = "a secret comes from the environment: write ${VARIABLE} and set it"
        problems.append(located.problem((*loc, *path), message))
    return None if literal else config


def _secret_paths(value: Any, path: Loc = ()) -> list[Loc]:
    """Where a validated config holds SecretStr values (nested models and lists included)."""
    if isinstance(value, SecretStr):
        return [path]
    if isinstance(value, BaseModel):
        fields = type(value).model_fields
        return [p for name in fields for p in _secret_paths(getattr(value, name), (*path, name))]
    if isinstance(value, (list, tuple)):
        return [p for i, item in enumerate(value) for p in _secret_paths(item, (*path, i))]
    if isinstance(value, Mapping):
        return [p for k, item in value.items() for p in _secret_paths(item, (*path, k))]
    return []


def _from_environment(raw: Any, path: Loc) -> bool:
    """The secret at `path` was written as ${VAR} (or is not in the file at all: a default)."""
    node = raw
    for part in path:
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return True
    return not isinstance(node, str) or not node or ENV_VAR.search(node) is not None


@dataclass(slots=True)
class Systems:
    """The built adapters and who plays which role."""

    mapping: HubMapping
    adapters: dict[str, Adapter]
    players: dict[str, list[str]]  # role -> system names, in mapping order
    classes: dict[str, type] = field(default_factory=dict)
    start_errors: dict[str, str] = field(default_factory=dict)  # non-essential systems that failed to start
    unchecked: list[Problem] = field(default_factory=list)  # configs not checked: variables unset (lint)

    def system(self, role: str) -> str:
        """The one system that plays a role (for roles many may play, use `all`)."""
        names = self.players.get(role, [])
        if len(names) != 1:
            raise LookupError(f"role {role!r} is played by {len(names)} systems")
        return names[0]

    def one(self, role: str) -> Any:
        return self.adapters[self.system(role)]

    def all(self, role: str) -> dict[str, Any]:
        return {name: self.adapters[name] for name in self.players.get(role, [])}

    def components(self) -> list[Component]:
        seen: dict[str, Component] = {}
        for name, cfg in self.mapping.systems.items():
            component = component_of(cfg.adapter, self.classes[name])
            if component is not None:
                seen[component.name] = component
        return list(seen.values())

    async def start(self) -> None:
        """Start every system. One that fails is served all the same (its calls fail until it is back:
        adapters reconnect lazily), unless it is essential: then the hub refuses to start, and so it
        does when an essential system's health check says it is down."""
        for name, adapter in self.adapters.items():
            cfg = self.mapping.systems[name]
            try:
                await adapter.start()
                if cfg.essential:
                    health = await bounded(adapter.check(), cfg.timeout_seconds)
                    if not health.ok:
                        raise EssentialSystemDown(f"essential system {name!r} is down: {health.detail}")
            except (MappingError, EssentialSystemDown):
                raise
            except Exception as exc:
                if cfg.essential:
                    raise EssentialSystemDown(
                        f"essential system {name!r} is down ({type(exc).__name__})"
                    ) from exc
                # A system that is down must not keep the hub from serving the others.
                self.start_errors[name] = type(exc).__name__
                log.warning("system %s did not start; serving without it", name, exc_info=exc)

    async def close(self) -> None:
        for name, adapter in self.adapters.items():
            try:
                await adapter.close()
            except Exception:
                log.exception("closing system %s failed", name)


def build_systems(
    mapping: HubMapping,
    located: Located,
    settings: Settings,
    engine: AsyncEngine,
    *,
    env_required: bool = True,
) -> Systems:
    """The adapters of a mapping, checked. With env_required=False (a lint where the deployment's
    environment is not at hand) a system whose config names an unset variable is left unbuilt and
    told in `Systems.unchecked`, not a problem."""
    factories = adapter_factories()
    adapters: dict[str, Adapter] = {}
    classes: dict[str, type] = {}
    problems: list[Problem] = []
    unchecked: list[Problem] | None = None if env_required else []
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
        adapter_class = ep.load()
        for port in ports_of(adapter_class):
            if not _implements(adapter_class, port):
                problems.append(
                    located.problem(
                        ("systems", name, "adapter"),
                        f"adapter {system.adapter!r} declares {port.__name__} but lacks its methods",
                    )
                )
        config_loc = ("systems", name, "config")
        config = validate_config(adapter_class, system.config, config_loc, located, problems, unchecked)
        classes[name] = adapter_class
        if config is None:
            continue
        ctx = AdapterContext(
            system=name,
            settings=settings,
            engine=engine,
            config=config,
            mappings_dir=Path(located.file).parent,
            timeout=system.timeout_seconds,
            log=logging.getLogger(f"hub.system.{name}"),
        )
        adapters[name] = adapter_class(ctx)
    if problems:
        raise MappingError(problems)

    players: dict[str, list[str]] = {}
    for role in ROLES.values():
        names = mapping.players(role.name)
        if role.implied_by is Implied.PROFILE:
            names += [n for n, cfg in mapping.systems.items() if cfg.profile]
        elif role.implied_by is Implied.FLOWS:
            # The hub itself, and systems that read their queue over AMQP, are no EventConsumers here.
            names += [f.destination for f in mapping.flows if f.destination != HUB_SOURCE and not f.external]
        elif role.implied_by is Implied.PORT and not names:  # players named under `roles:` win
            # Every built system whose adapter has the port and whose config serves it; the others
            # simply do not play the role (a privacy request gets NOT_SUPPORTED from them).
            names += [
                n for n in mapping.systems if n in adapters and _serves(adapters[n], classes[n], role.port)
            ]
            if not role.many and len(names) > 1:
                problems.append(located.problem(
                    ("roles",),
                    f"systems {', '.join(names)} could each play {role.name} ({role.summary}): name one "
                    f"under roles:",
                ))
                names = []
        names = list(dict.fromkeys(names))
        for name in names:
            # A configured system may not serve every port its class has (an unbuilt one is not asked).
            serves = getattr(adapters.get(name), "serves", None)
            if role.port in ports_of(classes[name]) and serves is not None and not serves(role.port):
                problems.append(
                    located.problem(
                        _where(mapping, role.name, name, role.implied_by),
                        f"system {name!r} is not configured as a {role.port.__name__}, which {role.name} "
                        f"needs (see its adapter's config)",
                    )
                )
            elif role.port not in ports_of(classes[name]):
                adapter = mapping.systems[name].adapter
                problems.append(
                    located.problem(
                        _where(mapping, role.name, name, role.implied_by),
                        f"system {name!r} ({adapter}) does not implement {role.port.__name__}, "
                        f"which {role.name} needs",
                    )
                )
        players[role.name] = names
    if problems:
        raise MappingError(problems)
    return Systems(mapping, adapters, players, classes, unchecked=unchecked or [])


def _serves(adapter: Any, adapter_class: type, port: type) -> bool:
    serves = getattr(adapter, "serves", None)
    return port in ports_of(adapter_class) and (serves is None or bool(serves(port)))


def _implements(adapter_class: type, port: type) -> bool:
    """Every method of the port, and as a coroutine function where the port's is one."""
    for name, member in vars(port).items():
        if name.startswith("_") or not callable(member):
            continue
        mine = getattr(adapter_class, name, None)
        if not callable(mine):
            return False
        if inspect.iscoroutinefunction(member) and not inspect.iscoroutinefunction(mine):
            return False
    return True


def _where(mapping: HubMapping, role: str, system: str, implied: Implied | None) -> Loc:
    if role in mapping.roles:
        named = mapping.roles[role]
        return (
            ("roles", role, named.index(system))
            if isinstance(named, list) and system in named
            else ("roles", role)
        )
    if implied is Implied.FLOWS:
        for i, flow in enumerate(mapping.flows):
            if flow.destination == system:
                return ("flows", i, "destination")
    return ("systems", system, "profile")
