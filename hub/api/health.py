"""A system's health check, bounded: what /healthz and the /ops page both ask."""

from __future__ import annotations

import asyncio
from typing import Any

from hub.ports import Health

HEALTH_TIMEOUT = 5.0


async def bounded_health(adapter: Any) -> Health:
    """A system's health, bounded: a hanging system is reported down, not waited for."""
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT):
            return await adapter.check()
    except TimeoutError:
        return Health(False, f"no answer within {HEALTH_TIMEOUT:g}s")
    except Exception as exc:
        return Health(False, type(exc).__name__)
