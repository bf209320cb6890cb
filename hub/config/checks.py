"""Cross-references in a mapping that no single model can see: roles, systems, key kinds, fields.

Every problem names file, line, column and field. Ports are checked later, by the registry, once the
adapters are known.
"""

from __future__ import annotations

from hub.config.loader import Located, MappingError, Problem
from hub.config.mapping import HubMapping
from hub.model import GOLDEN_ID, KeyKind, shape_of
from hub.roles import ROLES

HUB_SOURCE = "hub"  # a flow's source when the hub itself emits the events
RESERVED = {HUB_SOURCE, GOLDEN_ID}


def check_references(mapping: HubMapping, located: Located) -> None:
    problems: list[Problem] = []
    names = set(mapping.systems)

    def system(loc: tuple[str | int, ...], name: str) -> None:
        if name not in names:
            known = ", ".join(sorted(names)) or "none"
            problems.append(located.problem(loc, f"no system named {name!r} (systems: {known})"))

    for name in sorted(names & RESERVED):
        problems.append(
            located.problem(("systems", name), f"{name!r} is reserved; give the system another name")
        )

    for role_name, players in mapping.roles.items():
        role = ROLES.get(role_name)
        if role is None:
            problems.append(
                located.problem(
                    ("roles", role_name), f"unknown role {role_name!r} (roles: {', '.join(ROLES)})"
                )
            )
            continue
        if isinstance(players, list):
            if not role.many:
                problems.append(located.problem(("roles", role_name), "this role is played by one system"))
            for i, name in enumerate(players):
                system(("roles", role_name, i), name)
        else:
            system(("roles", role_name), players)
    for role in ROLES.values():
        if role.required and role.name not in mapping.roles:
            problems.append(located.problem(("roles",), f"no system plays {role.name} ({role.summary})"))

    key_kinds = {GOLDEN_ID, *(k.value for k in KeyKind), *names}
    for name, cfg in mapping.systems.items():
        if cfg.key not in key_kinds:
            problems.append(
                located.problem(
                    ("systems", name, "key"),
                    f"unknown key kind {cfg.key!r}: id, {', '.join(KeyKind)} or a system's name",
                )
            )
        for unified in cfg.profile:
            if shape_of(unified) is None:
                problems.append(
                    located.problem(("systems", name, "profile", unified), _unknown_field(unified))
                )

    for unified, rule in mapping.survivorship.items():
        if shape_of(unified) is None:
            problems.append(located.problem(("survivorship", unified), _unknown_field(unified)))
        if isinstance(rule, list):
            for i, name in enumerate(rule):
                system(("survivorship", unified, i), name)
        elif any(
            mapping.systems[n].updated_at is None for n in names if unified in mapping.systems[n].profile
        ):
            lacking = sorted(
                n
                for n in names
                if unified in mapping.systems[n].profile and mapping.systems[n].updated_at is None
            )
            problems.append(
                located.problem(
                    ("survivorship", unified),
                    f"newest needs updated_at on every system that maps {unified!r}"
                    f" (missing: {', '.join(lacking)})",
                )
            )

    seen: set[str] = set()
    for i, flow in enumerate(mapping.flows):
        if flow.name in seen:
            problems.append(located.problem(("flows", i, "name"), f"duplicate flow {flow.name!r}"))
        seen.add(flow.name)
        if flow.destination != HUB_SOURCE:  # `hub`: the hub itself takes the events (inbound)
            system(("flows", i, "destination"), flow.destination)
        elif flow.external:
            problems.append(located.problem(("flows", i, "external"), "the hub consumes its own flows"))
        if flow.source != HUB_SOURCE:
            system(("flows", i, "source"), flow.source)

    offered: set[str] = set()
    for i, action in enumerate(mapping.decisions.fallback):
        if action.offer_id in offered:
            problems.append(
                located.problem(
                    ("decisions", "fallback", i, "offer_id"), f"duplicate fallback offer {action.offer_id!r}"
                )
            )
        offered.add(action.offer_id)
    if problems:
        raise MappingError(problems)


def _unknown_field(unified: str) -> str:
    from hub.model import UNIFIED_FIELDS

    return f"unknown unified field {unified!r} (fields: {', '.join(UNIFIED_FIELDS)}, or attributes.<name>)"
