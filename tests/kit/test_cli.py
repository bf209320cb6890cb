"""`hub adapters list` and `hub adapters check` as subprocesses of the installed `hub` command."""

from __future__ import annotations

import os
import secrets
import shutil
import socket

import yaml

from hub.config import SHIPPED_MAPPINGS
from tests.kit.cli import hub, register


def test_list_shows_the_builtin_adapters_and_their_ports():
    out = hub("adapters", "list")
    assert out.returncode == 0, out.stderr
    rows = {line.split("\t")[0]: line.split("\t") for line in out.stdout.splitlines()}
    assert rows["builtin-crm"][2:] == ["hub_adapters.crm:BuiltinCRM", "ProfileSource, ContactRegistry, RequestRegistry, EventConsumer, PrivacyHandler, ConsentRegistry"]
    assert rows["builtin-cm"][2:] == [
        "hub_adapters.cm:BuiltinCM", "ProfileSource, DecisionEngine, EventConsumer, CampaignPlanner, PrivacyHandler"]
    assert rows["builtin-lm"][2:] == ["hub_adapters.lm:BuiltinLM", "LeadManager, EventConsumer, PrivacyHandler"]
    assert rows["email-smtp"][2:] == ["hub_adapters.channels.email:EmailChannel", "OutboundChannel"]


def test_check_passes_on_the_shipped_mapping(tmp_path):
    from aiosmtpd.controller import Controller

    smtp = dead_port()  # free now: the email channel's SMTP server listens on it
    controller = Controller(object(), hostname="127.0.0.1", port=smtp)
    controller.start()
    try:
        out = hub("adapters", "check", env={"HUB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}",
                                            "HUB_MAPPINGS_DIR": str(SHIPPED_MAPPINGS),
                                            "HUB_SMTP_PORT": str(smtp)})
    finally:
        controller.stop()
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith("up   (hub store)\t") and "\nup   crm\t" in out.stdout, out.stdout
    for system in ("cm", "lm", "email", "print", "callcenter", "backoffice"):
        assert f"\nup   {system}\t" in out.stdout, out.stdout


def test_check_reports_an_unreachable_hub_store_and_goes_on(tmp_path):
    out = hub("adapters", "check", env={"HUB_DATABASE_URL": f"postgresql+asyncpg://kit:s3cret@127.0.0.1:{dead_port()}/x",
                                        "HUB_MAPPINGS_DIR": str(SHIPPED_MAPPINGS)})
    assert out.returncode == 1, out.stdout + out.stderr
    assert out.stdout.startswith("DOWN (hub store)\t") and "\nDOWN crm\t" in out.stdout, out.stdout
    assert "Traceback" not in out.stderr and "s3cret" not in out.stdout + out.stderr


def dead_port() -> int:
    """A local port nothing listens on (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_check_names_a_system_whose_backend_is_dead(tmp_path):
    """An HTTP system (the scaffold's adapter, registered as `probe`) whose server is gone."""
    made = hub("adapters", "new", "probe", "--dir", str(tmp_path / "probe-adapter"))
    assert made.returncode == 0, made.stderr
    register(tmp_path / "site", "probe-adapter", {"probe": "probe_adapter:ProbeAdapter"})
    mappings = tmp_path / "mappings"
    shutil.copytree(SHIPPED_MAPPINGS, mappings)
    mapping = yaml.safe_load((mappings / "hub.yaml").read_text())
    mapping["systems"]["loyalty"] = {"adapter": "probe", "config": {
        "base_url": f"http://127.0.0.1:{dead_port()}/", "api_key": "${PROBE_API_KEY}"}}
    (mappings / "hub.yaml").write_text(yaml.safe_dump(mapping, sort_keys=False))
    key = f"kit-{secrets.token_hex(12)}"
    out = hub("adapters", "check", env={
        "HUB_MAPPINGS_DIR": str(mappings),
        "HUB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}",
        "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), str(tmp_path / "probe-adapter" / "src")]),
        "PROBE_API_KEY": key,
    })
    assert out.returncode == 1, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert any(line.startswith("DOWN loyalty\t") for line in lines), out.stdout
    assert any(line.startswith("up   crm\t") for line in lines), out.stdout
    assert any(line.startswith("up   cm\t") for line in lines), out.stdout
    assert key not in out.stdout + out.stderr


def test_check_reports_an_unset_secret_with_file_and_line(tmp_path):
    missing = f"PROBE_KEY_{secrets.token_hex(6).upper()}"  # set nowhere
    made = hub("adapters", "new", "probe", "--dir", str(tmp_path / "probe-adapter"))
    assert made.returncode == 0, made.stderr
    register(tmp_path / "site", "probe-adapter", {"probe": "probe_adapter:ProbeAdapter"})
    mappings = tmp_path / "mappings"
    shutil.copytree(SHIPPED_MAPPINGS, mappings)
    text = (mappings / "hub.yaml").read_text().replace(
        "\nsystems:\n",
        "\nsystems:\n  loyalty:\n    adapter: probe\n    config:\n      base_url: http://127.0.0.1:9/\n"
        f"      api_key: ${{{missing}}}\n", 1)
    (mappings / "hub.yaml").write_text(text)
    out = hub("adapters", "check", env={
        "HUB_MAPPINGS_DIR": str(mappings),
        "HUB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}",
        "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), str(tmp_path / "probe-adapter" / "src")]),
    })
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "api_key:" in row)
    assert out.returncode == 2, out.stdout + out.stderr
    assert f"hub.yaml:{line}:" in out.stderr, out.stderr
    assert f"systems.loyalty.config.api_key: environment variable {missing} is not set" in out.stderr
