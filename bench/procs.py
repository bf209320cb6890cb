"""What the cross-process benchmarks share: free ports, processes started and awaited until they answer."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp

HUB = str(Path(sys.executable).with_name("hub"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    # Started once, before anything is measured: not worth a thread.
    return subprocess.Popen(argv, env=env)


def stop(*procs: subprocess.Popen[bytes] | None) -> None:
    for proc in procs:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=15)


async def up(session: aiohttp.ClientSession, url: str, proc: subprocess.Popen[bytes]) -> None:
    """Wait until `url` answers 200 (the process must stay alive meanwhile)."""
    for _ in range(300):
        assert proc.poll() is None, f"{url}: the process ended"
        try:
            async with session.get(url) as r:
                if r.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")
