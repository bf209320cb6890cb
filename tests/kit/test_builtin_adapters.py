"""BuiltinCRM and BuiltinCM pass the acceptance kit on PostgreSQL (reached through a TcpProxy)."""

from __future__ import annotations

import pytest

from hub.ports.testing import AdapterKit
from tests.kit.builtin import CMHarness, CRMHarness, store_harness

pytestmark = pytest.mark.postgres


class TestBuiltinCRM(AdapterKit):
    @pytest.fixture
    async def harness(self, postgres_url):
        async with store_harness(CRMHarness, postgres_url) as h:
            yield h


class TestBuiltinCM(AdapterKit):
    @pytest.fixture
    async def harness(self, postgres_url):
        async with store_harness(CMHarness, postgres_url) as h:
            yield h
