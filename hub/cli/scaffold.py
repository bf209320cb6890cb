"""`hub adapters new NAME`: a ready-to-install adapter package, from the templates in
templates/adapter/ (`{{placeholder}}` in file contents, `__module__` in paths, `.tmpl` dropped).

The package talks HTTP+JSON to its system through httpx, is a ProfileSource and an EventConsumer,
and its tests run the acceptance kit (hub.ports.testing) against a local server playing the system,
so it passes out of the box and keeps passing while the author makes it their own."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parent / "templates" / "adapter"
# An entry-point name that is also a valid distribution name and, with - as _, a module name.
NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
PLACEHOLDER = re.compile(r"\{\{([a-z_]+)\}\}")


class ScaffoldError(ValueError):
    """A name or target the scaffold refuses; the message says why."""


@dataclass(frozen=True, slots=True)
class Names:
    entry_point: str  # demo-loyalty: in markiting_hub.adapters and the mapping's `adapter:`
    distribution: str  # demo-loyalty-adapter: for pip
    module: str  # demo_loyalty_adapter: for import
    cls: str  # DemoLoyaltyAdapter: the adapter class (its Config, the tests' Harness derive from it)
    env_prefix: str  # DEMO_LOYALTY: of the environment variable holding the API key
    title: str  # Demo Loyalty: for prose

    @classmethod
    def of(cls, name: str) -> Names:
        if not NAME.match(name) or len(name) > 50:
            raise ScaffoldError(
                f"{name!r} is not an adapter name: lower-case letters and digits, words joined by '-', "
                "starting with a letter (e.g. loyalty or acme-crm)"
            )
        words = name.split("-")
        base = name.removesuffix("-adapter")
        return cls(
            entry_point=name,
            distribution=f"{base}-adapter",
            module=f"{base.replace('-', '_')}_adapter",
            cls="".join(w.title() for w in words) + ("" if words[-1] == "adapter" else "Adapter"),
            env_prefix=name.replace("-", "_").upper(),
            title=" ".join(w.title() for w in words),
        )


def render(text: str, names: Names) -> str:
    values = asdict(names)

    def sub(m: re.Match[str]) -> str:
        if m.group(1) not in values:
            raise ScaffoldError(f"template placeholder {m.group(0)} is unknown")
        return str(values[m.group(1)])

    return PLACEHOLDER.sub(sub, text)


def scaffold(name: str, target: Path) -> list[Path]:
    """Write the package for adapter `name` into `target` (new or empty); the files written."""
    names = Names.of(name)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ScaffoldError(f"{target} exists and is not an empty folder; choose another with --dir")
    written = []
    for template in sorted(TEMPLATES.rglob("*.tmpl")):
        relative = template.relative_to(TEMPLATES).with_suffix("")
        out = target.joinpath(*(p.replace("__module__", names.module) for p in relative.parts))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(render(template.read_text(encoding="utf-8"), names), encoding="utf-8")
        written.append(out)
    return written
