"""The SMTP server of bench/outbound.py: aiosmtpd on an event loop of its own in a process of its own,
accepting every message and counting them; the hub and the aiosmtplib baseline send to the same one.

Run: `python smtp_sink.py PORT`. Prints `ready` once it listens, then answers every line on stdin with
the number of messages accepted so far; ends when stdin closes.
"""

from __future__ import annotations

import asyncio
import sys

from aiosmtpd.smtp import SMTP, Envelope, Session


class Count:
    """aiosmtpd handler: every message accepted (once its DATA is in), counted, dropped."""

    def __init__(self) -> None:
        self.messages = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.messages += 1
        return "250 OK"


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    count = Count()
    # A fixed hostname: aiosmtpd would otherwise ask the resolver (getfqdn) for every session.
    server = await loop.create_server(lambda: SMTP(count, hostname="sink.bench"), "127.0.0.1", port)
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    print("ready", flush=True)
    while await stdin.readline():
        print(count.messages, flush=True)
    server.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
