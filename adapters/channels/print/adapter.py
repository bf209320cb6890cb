"""The print street's drop folder: one CSV file per print batch.

LM hands out the due print leads in one round; `deliver` writes them as one CSV file into the folder
the print street picks its work up from. The file appears whole or not at all: it is written under a
hidden temporary name in the same folder, flushed and fsynced, then renamed into place, so the print
street never reads half a batch. A lead without a postal address fails for good ("no postal
address") and is left out of the file; a file that cannot be written fails the batch for now (LM
tries those leads again later).

Delivery is at least once: a hub that stops between the rename and LM recording the outcome hands the
same leads out again, in a later file. The lead code on each row lets the print street drop doubles.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import os
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from hub.ports import (
    AdapterConfig,
    AdapterContext,
    Delivery,
    DeliveryOutcome,
    Health,
    LeadChannel,
    OutboundChannel,
)

HEADER = ("lead_code", "name", "address", "offer_id", "offer_title", "response_url")
NO_ADDRESS = "no postal address"


class PrintConfig(AdapterConfig):
    folder: str = Field(
        min_length=1,
        description="the print street's drop folder; a relative path resolves from the mappings folder",
    )
    prefix: str = Field(
        default="print",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$",
        description="the start of each file's name: <prefix>-<UTC timestamp>-<random>.csv",
    )


def _kind(exc: OSError) -> str:
    """What went wrong, without the paths an OSError's str() carries."""
    reason = type(exc).__name__
    return f"{reason}: {exc.strerror}" if exc.strerror else reason


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX); a platform that cannot open a folder skips it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_batch(folder: Path, name: str, rows: Sequence[Sequence[str]]) -> None:
    """Blocking: the whole file under a temporary name, fsynced, then renamed to `name`."""
    folder.mkdir(parents=True, exist_ok=True)
    temporary = folder / f".{name}.tmp"
    try:
        # "x": never write into someone else's file of the same name.
        with open(temporary, "x", encoding="utf-8", newline="") as out:
            writer = csv.writer(out)  # QUOTE_MINIMAL: an address's newlines stay inside its quotes
            writer.writerow(HEADER)
            writer.writerows(rows)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, folder / name)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        raise
    _fsync_folder(folder)


def _probe(folder: Path) -> Health:
    """Blocking: whether a file can be created in the folder (details name no path)."""
    if not folder.exists():
        return Health(False, "drop folder missing")
    if not folder.is_dir():
        return Health(False, "drop folder is not a directory")
    probe = folder / f".check-{secrets.token_hex(4)}.tmp"
    try:
        with open(probe, "x", encoding="utf-8") as out:
            out.write("ok")
        probe.unlink()
    except OSError as exc:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)
        return Health(False, f"drop folder not writable ({_kind(exc)})")
    return Health(True, "drop folder writable")


class PrintChannel:
    """Entry point `print-file`."""

    ports: ClassVar[tuple[type, ...]] = (OutboundChannel,)
    Config = PrintConfig
    channel: LeadChannel = LeadChannel.PRINT

    def __init__(self, ctx: AdapterContext):
        self.system = ctx.system
        config = ctx.config
        assert isinstance(config, PrintConfig)
        self.config = config
        self._log = ctx.log
        folder = Path(config.folder).expanduser()
        if not folder.is_absolute():
            folder = Path(ctx.mappings_dir or ".") / folder
        self.folder = folder

    def __repr__(self) -> str:
        return f"PrintChannel(system={self.system!r})"

    async def start(self) -> None:
        # Created here and again before each file: a folder removed while the hub runs comes back.
        await asyncio.to_thread(self.folder.mkdir, parents=True, exist_ok=True)

    async def close(self) -> None:
        return None

    async def check(self) -> Health:
        return await asyncio.to_thread(_probe, self.folder)

    def _file_name(self) -> str:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        return f"{self.config.prefix}-{stamp}-{secrets.token_hex(3)}.csv"

    async def deliver(self, batch: Sequence[Delivery]) -> Sequence[DeliveryOutcome]:
        printable = [self._has_address(d) for d in batch]
        rows = [
            (
                d.lead.code,
                d.recipient.name or "",
                d.recipient.address or "",
                d.lead.offer_id,
                d.lead.title,
                d.response_url,
            )
            for d, ok in zip(batch, printable, strict=True)
            if ok
        ]
        missing = DeliveryOutcome(sent=False, detail=NO_ADDRESS, temporary=False)
        if not rows:
            return [missing for _ in batch]
        name = self._file_name()
        try:
            await asyncio.to_thread(_write_batch, self.folder, name, rows)
        except OSError as exc:
            reason = f"print file not written ({_kind(exc)})"
            self._log.warning("system %s: %s", self.system, reason, exc_info=True)
            failed = DeliveryOutcome(sent=False, detail=reason, temporary=True)
            return [failed if ok else missing for ok in printable]
        self._log.info("system %s: %d leads in print file %s", self.system, len(rows), name)
        sent = DeliveryOutcome(sent=True, detail=name)
        return [sent if ok else missing for ok in printable]

    @staticmethod
    def _has_address(delivery: Delivery) -> bool:
        address = delivery.recipient.address
        return address is not None and address.strip() != ""
