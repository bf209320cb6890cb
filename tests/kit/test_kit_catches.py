"""The kit fails broken adapters: each adapter in tests/kit/memory.py breaks one rule and fails the
kit test about it, while the good one passes them all.

The kit runs in a pytest of its own, the way an adapter package runs it: in a folder without the
hub's pytest settings (so pytest-asyncio's strict mode), with the adapters registered as entry points
by a dist-info folder on PYTHONPATH (how importlib.metadata finds installed packages)."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hub.config import PROJECT_ROOT
from tests.kit.memory import ADAPTERS

pytestmark = pytest.mark.slow

KIT_TESTS = {
    "ports": "test_declares_ports_and_builds_through_the_registry",
    "batch": "test_fetch_batches_and_leaves_out_unknown_keys",
    "timeout": "test_timeout_names_the_system_then_answers_again",
    "event": "test_same_event_twice_has_one_effect",
    "batch-event": "test_a_batch_has_the_effect_of_its_events_once",
    "config": "test_bad_config_is_reported_cleanly",
    "secrets": "test_secrets_never_appear",
    "dead": "test_check_reports_a_dead_backend",
    "requests": "test_requests_keep_their_status_history",
    "privacy": "test_erasure_forgets_the_customer_and_export_is_json",
    "reports": "test_reports_are_typed_rows_and_keep_to_the_period",
}
# Entry point -> the kit tests it must fail (and it must pass the others).
MUST_FAIL = {
    "kit-mem": set(),
    # The registry refuses to build it, so every test that builds it fails; the config test still
    # sees its own problem among the registry's.
    "kit-mem-no-consume": set(KIT_TESTS) - {"config"},
    "kit-mem-per-key-fetch": {"batch"},
    "kit-mem-poisoned": {"timeout"},
    "kit-mem-not-idempotent": {"event", "batch-event"},
    "kit-mem-batch-twice": {"batch-event"},
    "kit-mem-forgets-history": {"requests"},
    "kit-mem-echoes-secret": {"config", "secrets"},
    "kit-mem-logs-secret": {"secrets"},
    "kit-mem-dead-is-healthy": {"dead"},
    "kit-mem-keeps-erased": {"privacy"},
    "kit-mem-counts-every-period": {"reports"},
}

RUNNER = '''
import pytest_asyncio

from hub.ports.testing import AdapterKit
from tests.kit.memory import MemoryHarness


def kit_for(entry_point):
    class Kit(AdapterKit):
        @pytest_asyncio.fixture
        async def harness(self):
            yield MemoryHarness(entry_point)

    return Kit

'''


def class_name(entry_point: str) -> str:
    return "Test" + "".join(part.title() for part in entry_point.split("-"))


def write_runner(folder: Path) -> None:
    dist = folder / "site" / "kit_memory_adapters-0.0.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: kit-memory-adapters\nVersion: 0.0.0\n")
    lines = [f"{ep} = {cls.__module__}:{cls.__qualname__}" for ep, cls in ADAPTERS.items()]
    (dist / "entry_points.txt").write_text("[markiting_hub.adapters]\n" + "\n".join(lines) + "\n")
    body = "".join(f"{class_name(ep)} = kit_for({ep!r})\n" for ep in ADAPTERS)
    (folder / "test_memory_kit.py").write_text(RUNNER + body)


def run_kit(folder: Path) -> dict[tuple[str, str], str]:
    """(class, kit test) -> passed, failed or skipped."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder / "site"), str(PROJECT_ROOT)])}
    report = folder / "report.xml"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}",
         "test_memory_kit.py"],
        cwd=folder, env=env, capture_output=True, text=True, timeout=300,
    )
    assert report.exists(), done.stdout + done.stderr
    outcomes = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        kind = next((c.tag for c in case if c.tag in {"failure", "error", "skipped"}), "passed")
        outcomes[(case.get("classname", "").rpartition(".")[2], case.get("name", ""))] = kind
    return outcomes


def test_each_broken_adapter_fails_the_check_about_its_defect(tmp_path):
    write_runner(tmp_path)
    outcomes = run_kit(tmp_path)
    assert len(outcomes) == len(ADAPTERS) * len(KIT_TESTS), sorted(outcomes)
    wrong = []
    for ep, failing in MUST_FAIL.items():
        for short, test in KIT_TESTS.items():
            expected = "failure" if short in failing else "passed"
            got = outcomes[(class_name(ep), test)]
            if got != expected:
                wrong.append(f"{ep} {short}: expected {expected}, got {got}")
    assert not wrong, "\n".join(wrong)
