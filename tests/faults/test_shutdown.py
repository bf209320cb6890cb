"""A stopping hub stops in bounded time, even when its broker has gone silent: TCP open, no answer
(as a wedged RabbitMQ does). `hub serve` gets SIGTERM and must exit within HUB_SHUTDOWN_SECONDS for the
requests in flight plus the same again for its parts, and say which part it left behind."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time

import pytest

from tests.support import start_contact

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres, pytest.mark.slow]

SHUTDOWN_SECONDS = 2


async def test_sigterm_with_a_silent_broker_exits_in_bounded_time(
    settings_for, hub_process, proxy, rabbitmq_url, monkeypatch
):
    monkeypatch.setenv("HUB_SHUTDOWN_SECONDS", str(SHUTDOWN_SECONDS))
    process = hub_process(settings_for(broker_url=proxy.url(rabbitmq_url)))
    await process.wait_ready()
    async with process.client() as client:  # consumers, relay and publisher all busy with the broker
        await start_contact(client, email="silent-broker@example.com")

    proxy.slow(3600)  # the broker keeps every connection open and never answers again
    await asyncio.sleep(0.5)
    started = time.monotonic()
    process.proc.send_signal(signal.SIGTERM)
    try:
        code = await asyncio.to_thread(process.proc.wait, 60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the hub ignored SIGTERM for 60 s with a silent broker:\n{process.output()}")
    finally:
        proxy.slow(0)
    took = time.monotonic() - started
    # In flight: nothing, so the edge stops at once; the parts share one budget of SHUTDOWN_SECONDS
    # (plus the time a process takes to exit).
    assert took < 2 * SHUTDOWN_SECONDS + 3, f"{took:.1f} s to stop:\n{process.output()}"
    # uvicorn re-raises the SIGTERM it handled once it has shut down: killed by it, after a clean stop.
    assert code in (0, -signal.SIGTERM), process.output()
    assert "closing the bus took over" in process.output(), "the part left behind is named in the log"
