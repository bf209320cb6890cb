"""Pacing (hub.messaging.pacing): writers wait while the pipeline is behind, together, on one watch."""

from __future__ import annotations

import asyncio

from hub.messaging.pacing import POLL_SECONDS, Pacing


class Pipeline:
    """A `behind` signal the test flips, counting how often the pacing reads it."""

    def __init__(self, behind: bool) -> None:
        self.is_behind = behind
        self.reads = 0

    def behind(self) -> bool:
        self.reads += 1
        return self.is_behind


async def test_a_writer_goes_at_once_while_the_pipeline_keeps_up():
    pipeline = Pipeline(behind=False)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await Pacing(pipeline.behind, max_wait=2.0).turn()
    assert loop.time() - started < 0.05
    assert pipeline.reads == 1


async def test_writers_wait_until_the_pipeline_has_caught_up_and_one_watch_reads_the_signal_for_all():
    pipeline = Pipeline(behind=True)
    pacing = Pacing(pipeline.behind, max_wait=5.0)
    writers = [asyncio.create_task(pacing.turn()) for _ in range(200)]
    await asyncio.sleep(20 * POLL_SECONDS)
    assert not any(w.done() for w in writers)  # held while behind
    pipeline.is_behind = False
    await asyncio.wait_for(asyncio.gather(*writers), 1.0)
    # Each writer reads the signal once on entry; the waiting is one watch's polls, not a poll per writer
    # (200 writers polling every 5 ms for 0.1 s read it 4,000 times).
    assert pipeline.reads < 200 + 60


async def test_a_writer_goes_after_max_wait_even_while_behind_and_later_writers_still_wait():
    pipeline = Pipeline(behind=True)
    pacing = Pacing(pipeline.behind, max_wait=0.05)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await pacing.turn()
    waited = loop.time() - started
    assert 0.04 <= waited < 0.5
    # The watch goes on for the next writer: it waits its own max_wait, then goes.
    started = loop.time()
    await pacing.turn()
    assert loop.time() - started >= 0.04


async def test_a_cancelled_writer_does_not_release_or_break_the_others():
    pipeline = Pipeline(behind=True)
    pacing = Pacing(pipeline.behind, max_wait=5.0)
    leaving, staying = asyncio.create_task(pacing.turn()), asyncio.create_task(pacing.turn())
    await asyncio.sleep(2 * POLL_SECONDS)
    leaving.cancel()
    await asyncio.sleep(4 * POLL_SECONDS)
    assert not staying.done()
    pipeline.is_behind = False
    await asyncio.wait_for(staying, 1.0)


async def test_pacing_off_never_waits():
    pipeline = Pipeline(behind=True)
    await asyncio.wait_for(Pacing(pipeline.behind, max_wait=0).turn(), 0.05)
