"""Triggers a mapping reload on SIGHUP, and on a change of a file in the mappings folder."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

log = logging.getLogger(__name__)

Reload = Callable[[], Awaitable[bool]]
YAML_SUFFIXES = (".yaml", ".yml")
IGNORED = {"examples", "tests"}  # folders of the mappings dir the running hub does not read


class MappingWatcher:
    def __init__(self, reload: Reload, directory: Path, *, on_change: bool = True, debounce_ms: int = 300):
        self._reload = reload
        self._directory = directory
        self._on_change = on_change
        self._debounce_ms = debounce_ms
        self._tasks: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()
        self._signal = False

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not the main thread
            loop.add_signal_handler(signal.SIGHUP, self.trigger)
            self._signal = True
        if self._on_change:
            self._spawn(self._watch())

    def trigger(self) -> None:
        self._spawn(self._run_reload("SIGHUP"))

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_reload(self, why: str) -> None:
        log.info("reloading the mapping (%s)", why)
        try:
            await self._reload()
        except Exception:  # the current mapping keeps serving whatever went wrong
            log.exception("mapping reload failed")

    async def _watch(self) -> None:
        from watchfiles import awatch

        async for changes in awatch(
            self._directory, stop_event=self._stop, debounce=self._debounce_ms, recursive=True
        ):
            if any(self._serving(Path(path)) for _, path in changes):
                await self._run_reload("files changed")

    def _serving(self, path: Path) -> bool:
        """A YAML file the running hub reads: not the examples to copy, not the mapping tests."""
        if path.suffix not in YAML_SUFFIXES:
            return False
        try:
            top = path.relative_to(self._directory).parts[0]
        except (ValueError, IndexError):
            return True
        return top not in IGNORED

    async def stop(self) -> None:
        self._stop.set()
        if self._signal:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
