"""A tiny asyncio TCP proxy for fault tests: put it between a client and a service, then make the
service slow (`slow(seconds)`), dead (`cut()`: every open connection is closed and new ones are
refused) and well again (`restore()`, `slow(0)`).

    proxy = TcpProxy("127.0.0.1", 5672)
    await proxy.start()
    url = proxy.url("amqp://guest:guest@127.0.0.1:5672/")   # same URL through the proxy
    proxy.slow(5); ...; proxy.slow(0)
    await proxy.cut(); ...; proxy.restore()
    await proxy.close()

Shipped with the hub (not only its tests) because adapter packages use it to fault their backends
when they run the acceptance kit (`hub.ports.testing`).
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit, urlunsplit

Pair = tuple[asyncio.StreamWriter, asyncio.StreamWriter]


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, listen_host: str = "127.0.0.1") -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.listen_host = listen_host
        self.port = 0
        self.cut_now = False
        self.accepted = 0
        self.delay = 0.0  # seconds every answer of the service is held back (`slow`)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        # Replaced on every speed change: held-back answers wake up and re-read `delay`, so making
        # the service fast again also releases what it was holding (no stale 5 s sleeps left behind).
        self._speed_changed = asyncio.Event()

    @classmethod
    def for_url(cls, url: str) -> TcpProxy:
        parts = urlsplit(url)
        return cls(parts.hostname or "127.0.0.1", parts.port or 5672)

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, self.listen_host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def url(self, url: str) -> str:
        """`url` with its host and port replaced by the proxy's."""
        parts = urlsplit(url)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo + '@' if userinfo else ''}{self.listen_host}:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    def slow(self, seconds: float) -> None:
        """Hold back every answer of the service (each chunk it sends) for `seconds`; 0: fast again.

        Only the service's answers are delayed: a request arrives at once, its answer comes late, as
        with an overloaded service. Connections stay open."""
        self.delay = max(0.0, seconds)
        self._speed_changed.set()
        self._speed_changed = asyncio.Event()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut_now:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            writer.close()
            return
        self.accepted += 1
        pair = (writer, up_writer)
        self._writers.update(pair)
        for src, dst, answers in ((reader, up_writer, False), (up_reader, writer, True)):
            task = asyncio.create_task(self._pipe(src, dst, pair, answers))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, pair: Pair, answers: bool
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            while data := await src.read(65536):
                if answers:
                    await self._hold(loop.time())
                if dst.is_closing():
                    break
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            for w in pair:
                self._writers.discard(w)
                w.close()

    async def _hold(self, received: float) -> None:
        """Wait until `received + delay`, re-reading `delay` whenever it changes."""
        loop = asyncio.get_running_loop()
        while (remaining := received + self.delay - loop.time()) > 0:
            changed = self._speed_changed
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await changed.wait()

    async def cut(self) -> None:
        """Close every open connection (both sides) and refuse new ones until `restore`."""
        self.cut_now = True
        for writer in list(self._writers):
            with contextlib.suppress(Exception):
                writer.transport.abort()
        self._writers.clear()
        await asyncio.sleep(0)

    def restore(self) -> None:
        self.cut_now = False

    async def close(self) -> None:
        await self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
