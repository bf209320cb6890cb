"""Progress of long CLI work: a bar on a terminal, plain lines when stdout is not one (a log, a pipe, CI).

    with progress("replaying dead letters", total=len(letters), unit="letters") as bar:
        await hub.bus.replay(ids, progress=bar.report)

The core reports through a plain callback, `report(done, total)` (done so far; total when it knows it,
else None), so it stays free of the CLI. Plain lines have no control characters: one per step of
`every` items (a tenth of the total when it is known), and a last one when the work ends."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any


class Reporter:
    """Takes the core's reports and shows them; `report` is the callback to hand down."""

    def __init__(self, label: str, total: int | None, unit: str, every: int | None, out: IO[str], tty: bool):
        self.label = label
        self.total = total
        self.unit = unit
        self.done = 0
        self._every = every
        self._out = out
        self._tty = tty
        self._next_line: int | None = None  # plain mode: the count at which the next line is due
        self._bar: Any = None
        self._task: Any = None
        self._closed = False

    # -- the callbacks ---------------------------------------------------------------------------------

    def report(self, done: int, total: int | None = None) -> None:
        """Done so far (cumulative), and the total when the reporter learns it."""
        if total is not None:
            self.total = total
        self.done = max(self.done, done)
        self._show()

    def advance(self, n: int = 1) -> None:
        self.report(self.done + n)

    # -- showing ---------------------------------------------------------------------------------------

    def _step(self) -> int:
        if self._every:
            return self._every
        return max(1, self.total // 10) if self.total else 1

    def _line(self, final: bool = False) -> None:
        amount = f"{self.done}/{self.total}" if self.total is not None else str(self.done)
        tail = " done" if final else ""
        self._out.write(f"{self.label}: {amount} {self.unit}{tail}\n")
        self._out.flush()

    def _show(self) -> None:
        if self._tty:
            if self._bar is not None:
                self._bar.update(self._task, completed=self.done, total=self.total)
            return
        step = self._step()
        if self._next_line is None:
            self._next_line = step
        if self.done >= self._next_line and (self.total is None or self.done < self.total):
            self._line()
            self._next_line = (self.done // step + 1) * step

    def _start(self) -> None:
        if not self._tty:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        console = Console(file=self._out, force_terminal=True)
        self._bar = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(self.unit),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._bar.start()
        self._task = self._bar.add_task(self.label, total=self.total, completed=self.done)

    def _finish(self, ok: bool) -> None:
        if self._closed:
            return
        self._closed = True
        if self._tty:
            if self._bar is not None:
                if ok and self.total is None:
                    self._bar.update(self._task, total=self.done, completed=self.done)
                self._bar.stop()
            return
        if ok:
            self._line(final=True)


def is_terminal(out: IO[str]) -> bool:
    try:
        return out.isatty()
    except (AttributeError, ValueError):
        return False


@contextmanager
def progress(
    label: str,
    total: int | None = None,
    *,
    unit: str = "items",
    every: int | None = None,
    out: IO[str] | None = None,
) -> Iterator[Reporter]:
    """Show the work's progress while the block runs: a rich bar when `out` (stdout) is a terminal,
    else plain lines. The last line (or the full bar) only when the block ends without an error."""
    stream = out if out is not None else sys.stdout
    reporter = Reporter(label, total, unit, every, stream, is_terminal(stream))
    reporter._start()
    ok = False
    try:
        yield reporter
        ok = True
    finally:
        reporter._finish(ok)
