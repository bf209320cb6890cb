"""A subscriber that disconnects while a push is on its way is a client leaving: logged quietly, not as
an ERROR with a traceback (hub.api.transport). Anything else a subscription's task raises still is."""

from __future__ import annotations

import logging

from strawberry.http.exceptions import WebSocketDisconnected

from hub.api.transport import CodedTransportWS


def _handler() -> CodedTransportWS:
    # The hook reads nothing of the connection: no socket needed to call it.
    return CodedTransportWS.__new__(CodedTransportWS)


async def test_a_subscriber_leaving_mid_push_logs_no_error(caplog):
    with caplog.at_level(logging.DEBUG):
        await _handler().handle_task_exception(WebSocketDisconnected())
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("disconnected during a push" in r.getMessage() for r in caplog.records)


async def test_a_failing_subscription_task_is_still_logged_as_an_error(caplog):
    with caplog.at_level(logging.DEBUG):
        await _handler().handle_task_exception(RuntimeError("boom"))
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None
