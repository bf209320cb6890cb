"""docker-compose.yml and Dockerfile, checked by parsing (no Docker engine needed): the wiring a user
relies on when running `docker compose up`."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from hub.config import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


# --- helpers ----------------------------------------------------------------------------------------


def resolve(value: Any) -> str:
    """Compose interpolation with nothing set in the environment: `${X:-default}` -> default."""
    return _INTERPOLATION.sub(lambda m: m.group(2) or "", str(value))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def services(compose) -> dict[str, Any]:
    return compose["services"]


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the `- KEY=value` form
        env = dict(item.split("=", 1) for item in env)
    return {k: resolve(v) for k, v in env.items()}


def published_ports(service: dict[str, Any]) -> dict[int, int]:
    """container port -> host port, from the short syntax ("8000:8000", "127.0.0.1:8000:8000")."""
    out: dict[int, int] = {}
    for entry in service.get("ports", []):
        parts = resolve(entry).split("/")[0].split(":")
        out[int(parts[-1])] = int(parts[-2]) if len(parts) > 1 else int(parts[-1])
    return out


class Dockerfile:
    """Just enough of a Dockerfile parser: instructions, WORKDIR-relative COPY, ENV, exec-form commands."""

    def __init__(self, text: str):
        logical: list[str] = []
        buf = ""
        for line in text.splitlines():
            stripped = line.strip()
            if not buf and (not stripped or stripped.startswith("#")):
                continue
            if stripped.startswith("#"):
                continue
            if stripped.endswith("\\"):
                buf += stripped[:-1] + " "
                continue
            logical.append(buf + stripped)
            buf = ""
        self.instructions: list[tuple[str, str]] = []
        for line in logical:
            keyword, _, rest = line.partition(" ")
            self.instructions.append((keyword.upper(), rest.strip()))

    def stages(self) -> list[Dockerfile]:
        """Each build stage (from its FROM on) as a Dockerfile of its own; the last is the image."""
        out: list[Dockerfile] = []
        for kw, rest in self.instructions:
            if kw == "FROM":
                out.append(Dockerfile(""))
            if out:
                out[-1].instructions.append((kw, rest))
        return out

    def stage_name(self) -> str | None:
        parts = self.all("FROM")[0].split()
        return parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None

    def all(self, keyword: str) -> list[str]:
        return [rest for kw, rest in self.instructions if kw == keyword]

    def last_exec(self, keyword: str) -> list[str]:
        found = self.all(keyword)
        if not found:
            return []
        raw = found[-1]
        return json.loads(raw) if raw.startswith("[") else ["/bin/sh", "-c", raw]

    def env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for rest in self.all("ENV"):
            for token in shlex.split(rest):
                key, _, value = token.partition("=")
                out[key] = value
        return out

    def copies(self, from_stage: str | None = None) -> list[tuple[list[str], str]]:
        """(sources, absolute destination as written, trailing slash kept) for every COPY from the build
        context (or, given a stage's name, every COPY --from that stage)."""
        out = []
        workdir = PurePosixPath("/")
        for kw, rest in self.instructions:
            if kw == "FROM":
                workdir = PurePosixPath("/")
            elif kw == "WORKDIR":
                workdir = workdir / rest
            elif kw == "COPY":
                source_stage = next((a.split("=", 1)[1] for a in shlex.split(rest) if a.startswith("--from=")), None)
                if source_stage != from_stage:
                    continue
                args = [a for a in shlex.split(rest) if not a.startswith("--")]
                *sources, dest = args
                absolute = str(workdir / dest) + ("/" if dest.endswith("/") else "")
                out.append((sources, absolute))
        return out

    def placed(self) -> dict[str, PurePosixPath]:
        """Where each copied repository file or folder ends up in the image (Docker's COPY rules:
        a folder's contents go into the destination; files go into it when it ends in '/')."""
        out: dict[str, PurePosixPath] = {}
        for sources, dest in self.copies():
            for pattern in sources:
                for local in sorted(ROOT.glob(pattern.rstrip("/"))):
                    rel = local.relative_to(ROOT).as_posix()
                    if local.is_dir() or (len(sources) == 1 and not dest.endswith("/")):
                        out[rel] = PurePosixPath(dest)
                    else:
                        out[rel] = PurePosixPath(dest) / local.name
        return out

    def run_workdirs(self) -> list[tuple[str, str]]:
        out = []
        workdir = PurePosixPath("/")
        for kw, rest in self.instructions:
            if kw == "FROM":
                workdir = PurePosixPath("/")
            elif kw == "WORKDIR":
                workdir = workdir / rest
            elif kw == "RUN":
                out.append((str(workdir), rest))
        return out


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return Dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


# --- compose: PostgreSQL ----------------------------------------------------------------------------


def test_database_url_points_at_the_postgres_service(services):
    url = environment(services["hub"])["HUB_DATABASE_URL"]
    pg = environment(services["postgres"])
    parts = urlsplit(url)
    assert parts.scheme == "postgresql+asyncpg"
    assert parts.hostname == "postgres" and "postgres" in services
    assert parts.port == 5432  # the port PostgreSQL listens on inside its container
    assert parts.path.lstrip("/") == pg["POSTGRES_DB"] == "hub"
    assert parts.username == pg.get("POSTGRES_USER", "postgres")
    assert parts.password == pg["POSTGRES_PASSWORD"]
    assert services["postgres"]["image"].split(":")[0] == "postgres"
    assert services["postgres"]["image"].split(":")[1].startswith("16")


def test_the_hub_accepts_the_database_url(services):
    from hub.store.db import create_engine

    engine = create_engine(environment(services["hub"])["HUB_DATABASE_URL"])
    try:
        assert engine.dialect.name == "postgresql"
        assert engine.dialect.driver == "asyncpg"
    finally:
        engine.sync_engine.dispose()


# --- compose: RabbitMQ ------------------------------------------------------------------------------


def test_broker_url_points_at_rabbitmq_amqp_port_with_its_credentials(services):
    url = environment(services["hub"])["HUB_BROKER_URL"]
    rabbit = services["rabbitmq"]
    rabbit_env = environment(rabbit)
    parts = urlsplit(url)
    assert parts.scheme == "amqp"
    assert parts.hostname == "rabbitmq" and "rabbitmq" in services
    assert parts.port == 5672
    assert 5672 in published_ports(rabbit)  # the AMQP port the container listens on
    assert 15672 in published_ports(rabbit)  # management UI
    assert (parts.username, parts.password) == (
        rabbit_env.get("RABBITMQ_DEFAULT_USER", "guest"),
        rabbit_env.get("RABBITMQ_DEFAULT_PASS", "guest"),
    )
    assert parts.username and parts.password
    image, _, tag = rabbit["image"].partition(":")
    assert image == "rabbitmq"
    assert tag.endswith("-management")
    assert tag.startswith(("3.13", "4"))


def test_the_hub_picks_the_rabbitmq_bus_for_the_broker_url(services):
    from hub.messaging.bus import create_bus
    from hub.messaging.bus.rabbitmq import RabbitBus

    settings = Settings(broker_url=environment(services["hub"])["HUB_BROKER_URL"])
    assert isinstance(create_bus(settings, None), RabbitBus)  # type: ignore[arg-type]


# --- compose: start order, health, restarts, volumes ------------------------------------------------


def test_hub_waits_for_healthy_postgres_and_rabbitmq(services):
    depends = services["hub"]["depends_on"]
    assert isinstance(depends, dict), "depends_on needs the long form to wait for health"
    assert depends["postgres"]["condition"] == "service_healthy"
    assert depends["rabbitmq"]["condition"] == "service_healthy"


def test_postgres_and_rabbitmq_define_healthchecks(services):
    rabbit_test = services["rabbitmq"]["healthcheck"]["test"]
    assert rabbit_test[0] in {"CMD", "CMD-SHELL"}
    assert " ".join(rabbit_test[1:]).split() == ["rabbitmq-diagnostics", "-q", "ping"]
    pg_test = " ".join(services["postgres"]["healthcheck"]["test"][1:])
    assert pg_test.split()[0] == "pg_isready"
    assert "-d hub" in pg_test  # the database the hub uses, not just the server


def test_hub_publishes_8000_and_restarts(services):
    assert published_ports(services["hub"]) == {8000: 8000, 9100: 9100}
    assert services["hub"]["restart"] == "unless-stopped"
    assert services["hub"]["build"] in (".", {"context": "."})


def test_data_lives_in_named_volumes(compose, services):
    named = set(compose.get("volumes") or {})
    mounts = {
        name: {m.split(":")[0]: m.split(":")[1] for m in services[name].get("volumes", [])}
        for name in ("postgres", "rabbitmq")
    }
    pg_volume = next(src for src, dst in mounts["postgres"].items() if dst == "/var/lib/postgresql/data")
    mq_volume = next(src for src, dst in mounts["rabbitmq"].items() if dst == "/var/lib/rabbitmq")
    assert {pg_volume, mq_volume} <= named
    # RabbitMQ stores data under rabbit@<hostname>; a random hostname would orphan the volume's queues.
    assert services["rabbitmq"].get("hostname")


# --- compose and Settings ---------------------------------------------------------------------------


def _hub_variables(compose_text: str, services: dict[str, Any], dockerfile: Dockerfile) -> set[str]:
    names = set(environment(services["hub"]))
    names |= set(re.findall(r"\$\{(HUB_[A-Z0-9_]+)", compose_text))
    names |= set(dockerfile.env())
    return {n for n in names if n.startswith("HUB_")}


def test_every_hub_variable_is_a_settings_field(services, dockerfile):
    names = _hub_variables(COMPOSE.read_text(encoding="utf-8"), services, dockerfile)
    assert {"HUB_DATABASE_URL", "HUB_BROKER_URL", "HUB_METRICS_PORT", "HUB_METRICS_HOST"} <= names
    unknown = sorted(n for n in names if n.removeprefix("HUB_").lower() not in Settings.model_fields)
    assert unknown == [], f"not fields of hub.config.Settings (silently ignored): {unknown}"


def test_settings_read_the_compose_environment(services, monkeypatch):
    env = environment(services["hub"])
    monkeypatch.delenv("HUB_AUTH", raising=False)  # the test run's; compose sets none
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.database_url == env["HUB_DATABASE_URL"]
    assert settings.broker_url == env["HUB_BROKER_URL"]
    assert settings.demo is False
    assert settings.auth_required  # HUB_AUTH is not set: required (operators need a key, see below)
    assert settings.metrics_port == 9100


# --- Dockerfile -------------------------------------------------------------------------------------


def test_image_is_python_311_slim(dockerfile):
    assert dockerfile.all("FROM")[-1] == "python:3.11-slim"


def test_image_runs_hub_serve_on_all_interfaces_port_8000(dockerfile):
    import typer

    from hub.cli import app

    argv = dockerfile.last_exec("ENTRYPOINT") + dockerfile.last_exec("CMD")
    assert argv[:2] == ["hub", "serve"]
    # The arguments must be ones `hub serve` understands, with these values.
    serve = typer.main.get_command(app).commands["serve"]  # type: ignore[attr-defined]
    ctx = serve.make_context("serve", argv[2:])
    assert ctx.params["host"] == "0.0.0.0"
    assert ctx.params["port"] == 8000
    assert "8000" in " ".join(dockerfile.all("EXPOSE")).split()


def test_image_builds_the_wheel_and_installs_it_not_editable(dockerfile):
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    setuptools = pyproject["tool"]["setuptools"]
    package_dirs = setuptools.get("package-dir", {})
    # Folders the build needs: each top-level package, under its mapped folder (hub_adapters -> adapters,
    # hub_mappings -> mappings: the shipped mappings are package data of the wheel).
    needed = {package_dirs.get(p, p) for p in setuptools["packages"] if "." not in p}
    assert needed == {"hub", "adapters", "mappings"}
    *builds, image = dockerfile.stages()
    assert len(builds) == 1 and builds[0].stage_name()
    build = builds[0]
    wheels = [(wd, cmd) for wd, cmd in build.run_workdirs() if re.search(r"pip wheel .*--no-deps.* \.(\s|$)", cmd)]
    assert len(wheels) == 1, "the build stage makes the wheel once with `pip wheel --no-deps ... .`"
    build_dir = PurePosixPath(wheels[0][0])
    placed = build.placed()
    for item in [*sorted(needed), "pyproject.toml"]:
        assert placed.get(item) == build_dir / item, f"{item} is not copied to {build_dir} before pip wheel"
    wheel_dir = re.search(r"(?:-w|--wheel-dir)[ =](\S+)", wheels[0][1]).group(1)
    # The image takes the wheel from the build stage and installs it: a regular, non-editable install.
    ((sources, dest),) = image.copies(from_stage=build.stage_name())
    assert [s.rstrip("/") for s in sources] == [wheel_dir.rstrip("/")]
    installs = [cmd for _, cmd in image.run_workdirs() if "pip install" in cmd]
    assert len(installs) == 1
    assert re.search(rf"pip install {re.escape(dest.rstrip('/'))}/\*\.whl", installs[0]), installs[0]
    assert "-e" not in shlex.split(installs[0]) and "--editable" not in installs[0]
    # Nothing of the source tree in the image: no COPY from the build context.
    assert image.copies() == []


def test_the_image_uses_the_shipped_mappings_and_tells_how_to_mount_others(services, dockerfile):
    # The wheel carries them (hub_mappings); HUB_MAPPINGS_DIR is only for a deployment's own.
    assert "HUB_MAPPINGS_DIR" not in dockerfile.env()
    assert "HUB_MAPPINGS_DIR" not in environment(services["hub"])
    text = COMPOSE.read_text(encoding="utf-8")
    assert re.search(r"#\s*HUB_MAPPINGS_DIR: /app/mappings", text)
    assert re.search(r"#\s*- \./mappings:/app/mappings:ro", text)


def test_hub_healthcheck_in_compose_uses_python_against_healthz(services):
    test = services["hub"]["healthcheck"]["test"]
    assert test[0] == "CMD" and test[1] in {"python", "python3"}
    assert "http://127.0.0.1:8000/healthz" in " ".join(test)
    assert "curl" not in " ".join(test) and "wget" not in " ".join(test)


def test_operator_page_and_metrics_are_reachable(services, dockerfile):
    from hub.api.app import create_app

    env = environment(services["hub"])
    settings = Settings(**{k.removeprefix("HUB_").lower(): v for k, v in env.items() if k.startswith("HUB_")})
    # The metrics listener binds every interface of the container, on the port compose publishes.
    assert settings.metrics_host == "0.0.0.0"
    assert settings.metrics_port in published_ports(services["hub"])
    assert str(settings.metrics_port) in " ".join(dockerfile.all("EXPOSE")).split()
    # ... published on the host's loopback only: it has no credential.
    metrics_entry = next(p for p in services["hub"]["ports"] if resolve(p).endswith(f":{settings.metrics_port}"))
    assert resolve(metrics_entry).startswith("127.0.0.1:")
    # The operations page and /metrics are served on 8000.
    paths = {getattr(r, "path", None) for r in create_app(Settings()).routes}
    assert {"/ops", "/metrics", "/healthz", "/graphql"} <= paths


def test_the_documented_operator_key_command_works(services):
    """The compose file tells how to make the operator's key: a real `hub keys create` with real scopes."""
    import typer

    from hub.cli import app
    from hub.security.scopes import ALL_SCOPES, OPERATIONS_READ, OPERATIONS_WRITE, REPORTS_READ

    text = COMPOSE.read_text(encoding="utf-8")
    line = next(line for line in text.splitlines() if "docker compose exec hub hub keys create" in line)
    argv = shlex.split(line.split("docker compose exec hub hub ", 1)[1])
    assert argv[:2] == ["keys", "create"]
    create = typer.main.get_command(app).commands["keys"].commands["create"]  # type: ignore[attr-defined]
    ctx = create.make_context("create", argv[2:])
    scopes = set(ctx.params["scopes"].split(","))
    assert scopes <= ALL_SCOPES
    assert {OPERATIONS_READ, OPERATIONS_WRITE, REPORTS_READ} <= scopes  # every panel, replay, the reports
    assert "http://localhost:8000/ops" in text


def test_healthcheck_uses_python_against_healthz(dockerfile):
    healthchecks = dockerfile.all("HEALTHCHECK")
    assert len(healthchecks) == 1
    check = healthchecks[0]
    _, _, command = check.partition("CMD ")
    argv = json.loads(command) if command.startswith("[") else shlex.split(command)
    assert argv[0] in {"python", "python3"}
    assert "curl" not in check and "wget" not in check  # not in python:3.11-slim
    assert "http://127.0.0.1:8000/healthz" in " ".join(argv)


def test_the_app_serves_healthz():
    from hub.api.app import create_app

    paths = {getattr(r, "path", None) for r in create_app(Settings()).routes}
    assert "/healthz" in paths


def test_dockerignore_keeps_local_state_out():
    patterns = {
        line.strip().rstrip("/")
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", "var", ".git", "__pycache__", ".pytest_cache", ".ruff_cache"} <= patterns
    # Nothing the image build copies may be ignored.
    assert not patterns & {"hub", "adapters", "mappings", "pyproject.toml"}


def test_compose_waits_for_the_hubs_shutdown_before_killing_it(services):
    """SIGTERM gives requests in flight HUB_SHUTDOWN_SECONDS, then the parts as long again: Compose's
    grace (default 10 s) must cover both, or a stopping hub is killed mid-close."""
    hub = services["hub"]
    grace = re.fullmatch(r"(\d+)s", str(hub.get("stop_grace_period", "10s")))
    assert grace is not None, hub.get("stop_grace_period")
    env = {k: resolve(v) for k, v in (hub.get("environment") or {}).items()}
    shutdown = float(env.get("HUB_SHUTDOWN_SECONDS") or Settings.model_fields["shutdown_seconds"].default)
    assert int(grace.group(1)) > 2 * shutdown
