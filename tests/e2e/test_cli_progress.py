"""Long CLI work shows its progress: plain lines when stdout is a pipe (as here, and in CI), a bar on a
real terminal (a pseudo-terminal). The commands run as real processes on a real store that a hub in
the test filled: dead letters, a daily flow's waiting events, demo customers, a campaign's leads."""

from __future__ import annotations

import io
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from hub.api.app import create_app
from hub.cli.progress import progress
from hub.config import SHIPPED_MAPPINGS, Settings
from hub.events import CloudEvent
from hub.runtime import Hub
from tests.support import RECORD, eventually, gql, start_contact

HUB = str(Path(sys.executable).with_name("hub"))
DAILY_FLOW = "contact-events-to-cm"
DEAD = 250  # more than one step of the replay (200 a transaction)
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # anything but \t and \n


def daily_mappings(tmp_path: Path) -> Path:
    target = tmp_path / "mappings"
    shutil.copytree(SHIPPED_MAPPINGS, target)
    hub_yaml = target / "hub.yaml"
    text = hub_yaml.read_text()
    at = text.index(f"  - name: {DAILY_FLOW}")
    tail = text[at:].replace("    mode: realtime\n", '    mode: daily\n    at: "02:00"\n', 1)
    hub_yaml.write_text(text[:at] + tail)
    return target


def cli_env(tmp_path: Path, mappings: Path) -> dict[str, str]:
    return {
        **os.environ,
        "HUB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/hub.db",
        "HUB_BROKER_URL": "memory://",
        "HUB_MAPPINGS_DIR": str(mappings),
        "HUB_BUS_NAMESPACE": "hub",
        "COLUMNS": "100",
    }


def hub_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HUB, *args], capture_output=True, text=True, timeout=120, env=env)


def plain_lines(out: str, label: str) -> list[str]:
    assert not CONTROL.search(out), repr(out)  # no \r, no escape sequences: a log reads it as it is
    return [line for line in out.splitlines() if line.startswith(f"{label}: ")]


@pytest.fixture
async def filled(tmp_path):
    """A store with dead letters and events waiting in a daily flow; then the hub closes and the CLI
    runs on the same store in processes of its own."""
    mappings = daily_mappings(tmp_path)
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/hub.db",
        broker_url="memory://",
        mappings_dir=mappings,
        bus_namespace="hub",
    )
    hub = Hub(settings)
    await hub.start()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(hub=hub)),
                                     base_url="http://t") as client:
            started = await start_contact(client, email="progress@example.com")
            offer = started["nextBestActions"][0]["offerId"]
            events = [{"type": "PROPOSITION_SHOWN", "offerId": offer}] * 30
            await gql(client, RECORD, {"contactId": started["contact"]["id"], "events": events})
        # Poison for a realtime flow (customers-to-cm takes customer.*): each is a dead letter at once.
        for i in range(DEAD):
            bad = CloudEvent(type="customer.bogus", source="urn:test", subject="cus_x", data={"n": i})
            await hub.bus._publish_raw("customer.bogus", bad.to_json()[:-1], message_id=f"bad-{i}")
        await eventually(lambda: _count(hub, DEAD), timeout=60)
        await hub.settle(timeout=30)
        depth = {q.queue: q.depth for q in await hub.bus.stats()}
        assert depth[f"flow.{DAILY_FLOW}"] >= 1
    finally:
        await hub.close()
    return cli_env(tmp_path, mappings)


async def _count(hub: Hub, n: int) -> bool:
    return len(await hub.bus.dead_letters()) >= n


async def test_long_commands_print_plain_progress_lines_when_not_a_terminal(filled):
    replay = hub_cli(filled, "dlq", "replay", "--all")
    assert replay.returncode == 0, replay.stdout + replay.stderr
    lines = plain_lines(replay.stdout, "replaying dead letters")
    assert lines == [f"replaying dead letters: 200/{DEAD} dead letters",
                     f"replaying dead letters: {DEAD}/{DEAD} dead letters done"], replay.stdout
    assert replay.stdout.rstrip().endswith(f"replayed {DEAD} dead letters")

    run = hub_cli(filled, "flows", "run", DAILY_FLOW)
    assert run.returncode == 0, run.stdout + run.stderr
    assert plain_lines(run.stdout, f"flow {DAILY_FLOW}")[-2:] == [
        f"flow {DAILY_FLOW}: 30 events done", f"flow {DAILY_FLOW}: delivered 30 events"]

    demo = hub_cli(filled, "demo")
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert plain_lines(demo.stdout, "loading demo data") == [
        *(f"loading demo data: {i}/5 customers" for i in range(1, 5)),
        "loading demo data: 5/5 customers done",
    ]

    tests = hub_cli(filled, "mappings", "test")
    assert tests.returncode == 0, tests.stdout + tests.stderr
    lines = plain_lines(tests.stdout, "mapping tests")
    assert lines[-2].endswith("tests done") and lines[-1].startswith("mapping tests: ") and "0 failing" in lines[-1]

    launch = hub_cli(filled, "campaigns", "launch", "savings-plus", "--segment", "adults", "--channel", "EMAIL")
    assert launch.returncode == 0, launch.stdout + launch.stderr
    (done,) = plain_lines(launch.stdout, "handing leads to LM")
    planned = int(re.search(r"(\d+) leads planned", launch.stdout).group(1))
    assert planned > 0 and done == f"handing leads to LM: {planned}/{planned} leads done"


async def test_a_failing_command_prints_no_done_line(tmp_path):
    broken = tmp_path / "mappings"
    shutil.copytree(SHIPPED_MAPPINGS, broken)
    (broken / "tests" / "view.yaml").write_text("tests:\n  - name: x\n    system: nobody\n    record: {}\n")
    out = hub_cli(cli_env(tmp_path, broken), "mappings", "test")
    assert out.returncode == 2
    assert "done" not in out.stdout and "no system named 'nobody'" in out.stderr

    env = cli_env(tmp_path, SHIPPED_MAPPINGS)
    unknown = hub_cli(env, "campaigns", "launch", "no-such-offer", "--segment", "adults", "--channel", "EMAIL")
    assert unknown.returncode == 2 and "UNKNOWN_OFFER" in unknown.stderr and "Traceback" not in unknown.stderr
    assert "done" not in unknown.stdout
    fax = hub_cli(env, "campaigns", "launch", "savings-plus", "--segment", "adults", "--channel", "FAX")
    assert fax.returncode == 2 and "EMAIL, PRINT, CALLCENTER" in fax.stderr


def run_in_pty(env: dict[str, str], *args: str, timeout: float = 60) -> str:
    """The command with a real terminal as its stdout (and stdin); everything it wrote there."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([HUB, *args], stdin=follower, stdout=follower, stderr=subprocess.PIPE,
                            env={**env, "TERM": "xterm-256color"}, close_fds=True)
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.2)
            if ready:
                try:
                    data = os.read(leader, 65536)
                except OSError:  # the command ended and closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        assert proc.wait(timeout=max(1, deadline - time.monotonic())) == 0, proc.stderr.read()
    finally:
        os.close(leader)
        if proc.poll() is None:
            proc.kill()
    return b"".join(chunks).decode("utf-8", "replace")


def test_a_terminal_gets_a_progress_bar(tmp_path):
    env = cli_env(tmp_path, SHIPPED_MAPPINGS)
    tests = run_in_pty(env, "mappings", "test")
    assert "\x1b[" in tests  # drawn with escape sequences ...
    assert "━" in tests  # ... a bar (rich's) ...
    assert re.search(r"mapping tests.*4/4", tests)  # ... with its label and count
    assert "mapping tests: 4/4 tests done" not in tests  # not the plain lines
    demo = run_in_pty(env, "demo")
    assert "━" in demo and "5/5" in demo and "loading demo data" in demo
    assert "demo data loaded: 5 customers created" in demo


def test_plain_lines_come_every_tenth_or_every_n_items():
    out = io.StringIO()
    with progress("copying", total=1000, unit="rows", out=out) as bar:
        for done in range(0, 1001, 50):
            bar.report(done)
    lines = out.getvalue().splitlines()
    assert lines == [*(f"copying: {n}/1000 rows" for n in range(100, 1000, 100)), "copying: 1000/1000 rows done"]

    out = io.StringIO()
    with progress("draining", unit="events", every=10, out=out) as bar:
        for _ in range(25):
            bar.advance()
    assert out.getvalue().splitlines() == ["draining: 10 events", "draining: 20 events",
                                           "draining: 25 events done"]

    out = io.StringIO()
    with pytest.raises(RuntimeError), progress("failing", total=3, out=out) as bar:
        bar.report(1)
        raise RuntimeError("cut")
    assert out.getvalue().splitlines() == ["failing: 1/3 items"]
