"""Mapping tests: YAML beside a mapping that says what a system's record becomes in the unified view.

```yaml
tests:
  - name: a loyalty member with a Dutch mobile
    system: loyalty                  # one system's record ...
    record: {memberName: "  Anna ", phone: "06 1234 5678", level: G}
    expect:                          # ... and the fields it must give (others are not compared)
      name: Anna
      phones: ["+31612345678"]
      attributes.tier: gold
  - name: the CRM's name wins over loyalty's
    records: {crm: {...}, loyalty: {...}}   # several systems: merged by survivorship
    expect: {name: ..., sources.name: crm}  # sources.<field>: the system that supplied it
    problems: [loyalty.phones]       # values that must be reported as not fitting (default: none)
```
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hub.config.loader import Located, MappingError, Problem, load_located, validate
from hub.core.translate import Translator
from hub.model import CustomerView
from hub.registry import MAPPING_FILE, load_mapping


class MappingTest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    system: str | None = None
    record: dict[str, Any] | None = None
    records: dict[str, dict[str, Any]] | None = None
    expect: dict[str, Any] = Field(default_factory=dict)
    problems: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_input(self) -> MappingTest:
        if (self.record is None) == (self.records is None):
            raise ValueError("give either system + record, or records (system -> record)")
        if self.record is not None and self.system is None:
            raise ValueError("a record needs its system")
        return self


class MappingTestFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tests: list[MappingTest] = Field(min_length=1)


@dataclass(slots=True)
class Result:
    name: str
    where: str  # file:line
    ok: bool
    diff: list[str] = field(default_factory=list)


def test_files(mappings_dir: Path) -> list[Path]:
    # The examples to copy carry their own tests, run against their own hub.yaml.
    found = {
        p for p in mappings_dir.rglob("*.test.yaml") if "examples" not in p.relative_to(mappings_dir).parts
    }
    tests_dir = mappings_dir / "tests"
    if tests_dir.is_dir():
        found |= set(tests_dir.glob("*.yaml"))
    return sorted(p for p in found if p.name != MAPPING_FILE)


def view_as_record(view: CustomerView) -> dict[str, Any]:
    """The unified view as plain data, keyed as mappings and tests name the fields."""
    out: dict[str, Any] = {
        "name": view.name,
        "emails": view.emails,
        "phones": view.phones,
        "products": view.products,
        "segments": [{"id": s.id, "name": s.name} for s in view.segments],
        "offerHistory": [
            {
                "offerId": h.offer_id,
                "shown": h.shown,
                "accepted": h.accepted,
                "rejected": h.rejected,
                "later": h.later,
            }
            for h in view.offer_history
        ],
        "attributes": view.attributes,
    }
    for name, value in view.attributes.items():
        out[f"attributes.{name}"] = value
    for source in view.sources:
        out[f"sources.{source.field}"] = source.system
    return out


async def run_tests(
    mappings_dir: Path, progress: Callable[[int, int | None], None] | None = None
) -> list[Result]:
    """Every mapping test beside the mapping; `progress` is told how many have run, of how many."""
    mapping, _ = load_mapping(mappings_dir)
    translator = Translator(mapping)
    results: list[Result] = []
    problems: list[Problem] = []
    suites: list[tuple[Located, MappingTestFile]] = []
    for path in test_files(mappings_dir):
        located = load_located(path)
        try:
            suites.append((located, validate(located, MappingTestFile)))
        except MappingError as exc:
            problems.extend(exc.problems)
    total, done = sum(len(suite.tests) for _, suite in suites), 0
    for located, suite in suites:
        for i, case in enumerate(suite.tests):
            records = case.records if case.records is not None else {case.system or "": case.record or {}}
            for system in records:
                if system not in mapping.systems:
                    problems.append(
                        located.problem(
                            ("tests", i, "records" if case.records else "system"),
                            f"no system named {system!r} in {MAPPING_FILE}",
                        )
                    )
            if not problems:
                results.append(_run(case, records, translator, located, i))
            done += 1
            if progress is not None:
                progress(done, total)
    if problems:
        raise MappingError(problems)
    return results


def _run(
    case: MappingTest,
    records: dict[str, dict[str, Any]],
    translator: Translator,
    located: Located,
    index: int,
) -> Result:
    now = datetime.now(UTC)
    fragments = [translator.translate(system, record, now) for system, record in records.items()]
    view = translator.merge("test", fragments)
    got = view_as_record(view)
    diff = []
    for key, expected in case.expect.items():
        actual = got.get(key)
        if actual != expected:
            diff.append(f"{key}: expected {expected!r}, got {actual!r}")
    reported = sorted(f"{p.system}.{p.field}" for p in view.problems)
    if reported != sorted(case.problems):
        details = "; ".join(f"{p.system}.{p.field}: {p.message}" for p in view.problems) or "none"
        diff.append(f"problems: expected {sorted(case.problems)!r}, got {reported!r} ({details})")
    line, _ = located.mark_of(("tests", index))
    return Result(case.name, f"{located.file}:{line}", not diff, diff)
