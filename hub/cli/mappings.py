"""`hub mappings`: validate a mapping folder, and run the mapping tests beside it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hub.cli.common import FAILED, run
from hub.cli.progress import progress
from hub.config.loader import MappingError, Problem
from hub.config.settings import Settings

app = typer.Typer(help="Mappings: validate them and run their tests.", no_args_is_help=True)

DirArg = Annotated[
    Path | None, typer.Argument(help="The mappings folder (default: HUB_MAPPINGS_DIR, else the shipped one).")
]


async def validate_dir(mappings_dir: Path, strict_env: bool = True) -> tuple[int, int, list[Problem]]:
    """Every problem in a mapping folder as one MappingError: YAML, models, references, adapter
    configs and ports, and the files adapters read (their `lint`). Returns (systems, flows, the
    configs left unchecked because a variable is unset: only when not strict_env)."""
    from hub.registry import build_systems, load_mapping
    from hub.store.db import create_engine

    mapping, located = load_mapping(mappings_dir)
    settings = Settings(mappings_dir=mappings_dir)
    engine = create_engine("sqlite+aiosqlite:///:memory:")
    try:
        systems = build_systems(mapping, located, settings, engine, env_required=strict_env)
        problems: list[Problem] = []
        for adapter in systems.adapters.values():
            lint = getattr(adapter, "lint", None)
            if lint is None:
                continue
            try:
                await lint()
            except MappingError as exc:
                problems.extend(exc.problems)
        if problems:
            raise MappingError(problems)
    finally:
        await engine.dispose()
    return len(mapping.systems), len(mapping.flows), systems.unchecked


@app.command()
def validate(
    mappings_dir: DirArg = None,
    strict_env: Annotated[
        bool, typer.Option("--strict-env", help="An unset ${VARIABLE} is a problem (as for hub serve).")
    ] = False,
) -> None:
    """Print every problem as file:line:column: field: message; exit 2 when there is one.

    A lint runs where the deployment's secrets are not: a config naming an unset ${VARIABLE} is told as
    a warning and left unchecked, unless --strict-env (hub serve always requires them)."""
    folder = mappings_dir or Settings().mappings_dir
    systems, flows, unchecked = run(validate_dir, folder, strict_env)
    for problem in unchecked:
        typer.echo(f"warning: {problem} (its config is not checked)", err=True)
    typer.echo(f"ok: {systems} systems, {flows} flows in {folder}")


@app.command("test")
def test(mappings_dir: DirArg = None) -> None:
    """Run the mapping tests (*.test.yaml, and tests/*.yaml): input records -> expected unified record.
    A failure names the test, its file and line, and shows the difference; exit 1 on a failure."""
    from hub.cli.mapping_tests import run_tests

    folder = mappings_dir or Settings().mappings_dir
    with progress("mapping tests", unit="tests") as bar:
        results = run(run_tests, folder, bar.report)
    failed = [r for r in results if not r.ok]
    for r in results:
        typer.echo(f"{'ok  ' if r.ok else 'FAIL'} {r.name} ({r.where})")
        for line in r.diff:
            typer.echo(f"       {line}")
    typer.echo(f"mapping tests: {len(results) - len(failed)} ok, {len(failed)} failing")
    if failed or not results:
        if not results:
            typer.echo(f"no mapping tests found in {folder}", err=True)
        raise typer.Exit(FAILED)
