"""A stuck part cannot keep the hub from stopping: each close step has a deadline, and it says why."""

from __future__ import annotations

import asyncio

from hub.config import Settings
from hub.runtime import Hub


async def test_close_goes_on_past_a_stuck_adapter_and_names_it(sqlite_url, caplog):
    hub = Hub(Settings(database_url=sqlite_url))
    await hub.start()

    async def stuck() -> None:
        await asyncio.Event().wait()

    hub.systems.adapters["crm"].close = stuck
    pool = hub.engine.sync_engine.pool
    loop = asyncio.get_running_loop()
    started = loop.time()
    # A budget the healthy steps keep on a loaded machine (their first rounds just started on SQLite's
    # one writer), which the stuck one cannot.
    await hub.close(step_timeout=1.0)
    assert loop.time() - started < 5
    assert "closing the adapters took over" in caplog.text
    assert "stuck" in caplog.text  # the pending task's stack is in the log
    assert len(hub.close_overruns) == 1 and hub.close_overruns[0].startswith("adapters:")
    assert hub.engine.sync_engine.pool is not pool, "the store step after the stuck one still ran (dispose)"
