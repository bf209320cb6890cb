"""The print and call-center outbound channels, built the way the hub builds them (a mapping file naming
the entry point, hub.registry.build_systems), and both through the acceptance kit."""

from __future__ import annotations

import asyncio
import csv
import os
import re
import shutil
import stat
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from hub.config.loader import MappingError, load_located, validate
from hub.config.mapping import HubMapping
from hub.config.settings import Settings
from hub.ports import (
    Delivery,
    DeliveryOutcome,
    Lead,
    LeadChannel,
    OutboundChannel,
    Recipient,
)
from hub.ports.testing import AdapterKit, BaseHarness
from hub.registry import build_systems
from hub_adapters.channels.callcenter import CallCenterChannel
from hub_adapters.channels.print import PrintChannel
from hub_adapters.channels.print import adapter as print_module

HEADER = ["lead_code", "name", "address", "offer_id", "offer_title", "response_url"]
FILE_NAME = re.compile(r"^print-\d{8}T\d{12}-[0-9a-f]{6}\.csv$")
NO_ADDRESS = DeliveryOutcome(sent=False, detail="no postal address", temporary=False)


def build(tmp_path: Path, adapter: str, config: dict[str, Any] | None = None, system: str = "out") -> Any:
    """The adapter as hub.registry.build_systems makes it from a mapping file in tmp_path."""
    path = tmp_path / "hub.yaml"
    entry: dict[str, Any] = {"adapter": adapter}
    if config is not None:
        entry["config"] = config
    path.write_text(yaml.safe_dump({"systems": {system: entry}}, sort_keys=False))
    located = load_located(path)
    mapping = validate(located, HubMapping)
    systems = build_systems(mapping, located, Settings(mappings_dir=tmp_path), None)  # type: ignore[arg-type]
    return systems.adapters[system]


def delivery(n: int, address: str | None, name: str | None = "Kim Jansen", channel=LeadChannel.PRINT) -> Delivery:
    lead = Lead(
        id=f"lead-{n}", code=f"K{n:05d}", campaign_id="cmp-1", customer_id=f"cus-{n}",
        offer_id="savings-plus", title="Savings Plus, 2% \"bonus\"", channel=channel, decision_id=f"dec-{n}",
    )
    return Delivery(
        lead=lead,
        recipient=Recipient(name=name, email=None, address=address),
        response_url=f"https://hub.example/r/K{n:05d}",
        unsubscribe_url=f"https://hub.example/u/K{n:05d}",
    )


def row(d: Delivery) -> list[str]:
    return [d.lead.code, d.recipient.name or "", d.recipient.address or "", d.lead.offer_id, d.lead.title,
            d.response_url]


def outbound(adapter: object) -> bool:
    """Whether the built adapter is an OutboundChannel (runtime_checkable: it has the port's members)."""
    return isinstance(adapter, OutboundChannel)


def read_csv(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.reader(f))


def entries(folder: Path) -> list[str]:
    """Everything in the folder, hidden (temporary) files included."""
    return sorted(os.listdir(folder))


@pytest.fixture
async def printer(tmp_path: Path) -> Any:
    adapter = build(tmp_path, "print-file", {"folder": "drop"})
    await adapter.start()
    yield adapter
    await adapter.close()


# --- print ---------------------------------------------------------------------------------------


async def test_print_builds_as_an_outbound_channel(printer: Any, tmp_path: Path) -> None:
    assert isinstance(printer, PrintChannel) and outbound(printer)
    assert printer.channel is LeadChannel.PRINT and printer.system == "out"
    assert (tmp_path / "drop").is_dir(), "start() creates the drop folder"
    health = await printer.check()
    assert health.ok, health


async def test_one_file_per_batch_with_exactly_the_leads_that_have_an_address(
    printer: Any, tmp_path: Path
) -> None:
    batch = [
        delivery(1, "Kerkstraat 1\n1234 AB Utrecht\nNetherlands", name='Jansen, "Kim"'),
        delivery(2, None),
        delivery(3, "Dorpsweg 7\r\n9999 ZZ Ergens", name=None),
        delivery(4, "  \n "),  # only whitespace: no address
    ]
    outcomes = await printer.deliver(batch)

    drop = tmp_path / "drop"
    files = entries(drop)
    assert len(files) == 1 and FILE_NAME.match(files[0]), files  # and no temporary file left behind
    name = files[0]
    sent = DeliveryOutcome(sent=True, detail=name)
    assert list(outcomes) == [sent, NO_ADDRESS, sent, NO_ADDRESS]
    assert read_csv(drop / name) == [HEADER, row(batch[0]), row(batch[2])]
    assert read_csv(drop / name)[1][2] == "Kerkstraat 1\n1234 AB Utrecht\nNetherlands"


async def test_two_batches_make_two_files(printer: Any, tmp_path: Path) -> None:
    first, second = [delivery(1, "A 1\nB")], [delivery(2, "C 2\nD"), delivery(3, "E 3")]
    done_first = await printer.deliver(first)
    done_second = await printer.deliver(second)
    drop = tmp_path / "drop"
    files = entries(drop)
    assert len(files) == 2 and all(FILE_NAME.match(f) for f in files), files
    by_name = {o.detail for o in [*done_first, *done_second]}
    assert by_name == set(files)
    assert read_csv(drop / done_first[0].detail) == [HEADER, row(first[0])]
    assert read_csv(drop / done_second[0].detail) == [HEADER, row(second[0]), row(second[1])]
    assert done_second[0] == done_second[1], "one file per batch"


async def test_nobody_with_an_address_writes_no_file(printer: Any, tmp_path: Path) -> None:
    assert list(await printer.deliver([delivery(1, None), delivery(2, "")])) == [NO_ADDRESS, NO_ADDRESS]
    assert list(await printer.deliver([])) == []
    assert entries(tmp_path / "drop") == []


async def test_relative_folder_resolves_from_the_mappings_folder_and_is_created(tmp_path: Path) -> None:
    adapter = build(tmp_path, "print-file", {"folder": "out/print street", "prefix": "mailing"})
    assert not (tmp_path / "out").exists()
    # Not started: the folder is made when the first file is written all the same.
    [outcome] = await adapter.deliver([delivery(1, "Kerkstraat 1")])
    folder = tmp_path / "out" / "print street"
    assert outcome.sent and entries(folder) == [outcome.detail]
    assert re.match(r"^mailing-\d{8}T\d{12}-[0-9a-f]{6}\.csv$", outcome.detail)


async def test_absolute_folder_is_used_as_given(tmp_path: Path) -> None:
    folder, conf = tmp_path / "elsewhere", tmp_path / "conf"
    conf.mkdir()
    adapter = build(conf, "print-file", {"folder": str(folder)})
    await adapter.start()
    [outcome] = await adapter.deliver([delivery(1, "Kerkstraat 1")])
    assert entries(folder) == [outcome.detail]


async def test_a_folder_that_is_a_file_fails_the_batch_for_now(tmp_path: Path) -> None:
    adapter = build(tmp_path, "print-file", {"folder": "drop"})
    (tmp_path / "drop").write_text("not a folder")
    health = await adapter.check()
    assert not health.ok and "not a directory" in health.detail
    assert str(tmp_path) not in health.detail

    outcomes = await adapter.deliver([delivery(1, "Kerkstraat 1"), delivery(2, None), delivery(3, "Dorpsweg")])
    failed, missing, failed_too = outcomes
    assert not failed.sent and failed.temporary and failed == failed_too
    assert failed.detail is not None and "FileExistsError" in failed.detail
    assert str(tmp_path) not in failed.detail and "drop" not in failed.detail
    assert missing == NO_ADDRESS, "no address stays a permanent failure: trying again cannot help"
    assert entries(tmp_path) == ["drop", "hub.yaml"]


async def test_a_missing_folder_is_reported_by_check(printer: Any, tmp_path: Path) -> None:
    shutil.rmtree(tmp_path / "drop")
    health = await printer.check()
    assert not health.ok and health.detail == "drop folder missing"
    [outcome] = await printer.deliver([delivery(1, "Kerkstraat 1")])
    assert outcome.sent, "deliver() makes the folder again"
    assert (await printer.check()).ok


def refuses_writes(folder: Path) -> bool:
    """Whether a read-only folder keeps this process out (root, with CAP_DAC_OVERRIDE, writes anyway)."""
    try:
        (folder / ".probe").touch()
    except PermissionError:
        return True
    (folder / ".probe").unlink()
    return False


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
async def test_an_unwritable_folder_fails_the_batch_for_now(printer: Any, tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        if not refuses_writes(drop):
            pytest.skip("this user writes into read-only folders (root): see the failed-rename test")
        health = await printer.check()
        outcomes = await printer.deliver([delivery(1, "Kerkstraat 1"), delivery(2, "Dorpsweg")])
    finally:
        drop.chmod(stat.S_IRWXU)
    assert not health.ok and "PermissionError" in health.detail and str(tmp_path) not in health.detail
    assert all(not o.sent and o.temporary and "PermissionError" in (o.detail or "") for o in outcomes)
    assert entries(drop) == []


async def test_a_failed_rename_leaves_no_temporary_file(
    printer: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unwritable as root too: the write fails after the temporary file was made."""
    wrote: list[str] = []

    def refuse(src: Any, dst: Any) -> None:
        wrote.append(Path(src).name)
        raise PermissionError(13, "Permission denied", str(dst))

    monkeypatch.setattr(print_module.os, "replace", refuse)
    outcomes = await printer.deliver([delivery(1, "Kerkstraat 1"), delivery(2, "Dorpsweg")])
    monkeypatch.undo()
    assert len(wrote) == 1 and wrote[0].startswith(".print-") and wrote[0].endswith(".csv.tmp"), wrote
    assert entries(tmp_path / "drop") == [], "the temporary file is removed"
    expected = DeliveryOutcome(sent=False, detail="print file not written (PermissionError: Permission denied)",
                               temporary=True)
    assert list(outcomes) == [expected, expected]


async def test_the_write_does_not_block_the_event_loop(
    printer: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = print_module._write_batch

    def slow_write(*args: Any) -> None:
        time.sleep(0.3)  # a slow network share
        real(*args)

    monkeypatch.setattr(print_module, "_write_batch", slow_write)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        [outcome] = await printer.deliver([delivery(1, "Kerkstraat 1")])
    finally:
        task.cancel()
    assert outcome.sent and ticks >= 5, f"the loop ticked {ticks}x during a 0.3 s write"


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"folder": "drop", "colour": "red"}, "colour"),
        ({"folder": "drop", "prefix": "../up"}, "prefix"),
        ({"folder": ""}, "folder"),
        ({"prefix": "print"}, "folder"),
    ],
)
def test_print_config_errors_name_the_field(tmp_path: Path, config: dict[str, Any], field: str) -> None:
    with pytest.raises(MappingError) as info:
        build(tmp_path, "print-file", config)
    assert "hub.yaml:" in str(info.value) and f"systems.out.config.{field}:" in str(info.value), str(info.value)


# --- call center ---------------------------------------------------------------------------------


async def test_callcenter_puts_every_delivery_on_the_call_list(tmp_path: Path) -> None:
    adapter = build(tmp_path, "callcenter-list")
    assert isinstance(adapter, CallCenterChannel) and outbound(adapter)
    assert adapter.channel is LeadChannel.CALLCENTER
    await adapter.start()
    batch = [delivery(n, None if n % 2 else "Kerkstraat 1", channel=LeadChannel.CALLCENTER) for n in range(3)]
    on_list = DeliveryOutcome(sent=True, detail="on the call list", temporary=False)
    assert list(await adapter.deliver(batch)) == [on_list, on_list, on_list]
    assert list(await adapter.deliver([])) == []
    health = await adapter.check()
    assert health.ok and health.detail == "in process"
    await adapter.close()
    assert entries(tmp_path) == ["hub.yaml"], "nothing is written anywhere"


def test_callcenter_takes_no_config(tmp_path: Path) -> None:
    assert build(tmp_path, "callcenter-list", {}).system == "out"
    with pytest.raises(MappingError) as info:
        build(tmp_path, "callcenter-list", {"queue": "agents"})
    assert "systems.out.config.queue" in str(info.value)


# --- the acceptance kit --------------------------------------------------------------------------


class PrintHarness(BaseHarness):
    """The backend is the drop folder: dead is a file where the folder should be."""

    entry_point = "print-file"
    system = "print"
    config = {"folder": "drop"}
    invalid_configs = (
        ({"folder": "drop", "colour": "red"}, "colour"),
        ({"folder": "drop", "prefix": "../up"}, "prefix"),
        ({"folder": ""}, "folder"),
    )

    def __init__(self, root: Path):
        self.folder = root / "drop"  # the kit's mapping file is in the same tmp_path
        self.away = root / "drop.away"

    async def dead(self) -> None:
        if self.folder.is_dir():
            self.folder.rename(self.away)
        self.folder.write_text("not a folder")

    async def alive(self) -> None:
        if self.folder.is_file():
            self.folder.unlink()
        if self.away.exists():
            self.away.rename(self.folder)


class TestPrintChannelKit(AdapterKit):
    @pytest.fixture
    def harness(self, tmp_path: Path) -> PrintHarness:
        return PrintHarness(tmp_path)


class CallCenterHarness(BaseHarness):
    entry_point = "callcenter-list"
    system = "callcenter"
    invalid_configs = (({"queue": "agents"}, "queue"),)


class TestCallCenterChannelKit(AdapterKit):
    @pytest.fixture
    def harness(self) -> CallCenterHarness:
        return CallCenterHarness()

    async def test_check_reports_a_dead_backend(self) -> None:  # type: ignore[override]
        pytest.skip("the call list lives in LM, in the hub's process: there is no backend to kill")
