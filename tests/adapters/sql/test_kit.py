"""The SQL adapter passes the acceptance kit (hub.ports.testing) on PostgreSQL, reached through a
TcpProxy so the kit can make the database slow and dead, with a password in the URL that must never
be shown."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from sqlalchemy import Column, Engine, MetaData, String, Table, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from hub.ports.proxy import TcpProxy
from hub.ports.testing import AdapterKit, ProxiedHarness

pytestmark = pytest.mark.postgres

kit_metadata = MetaData()
kit_customers = Table(
    "kit_customers",
    kit_metadata,
    Column("email", String(100), primary_key=True),
    Column("name", String(100)),
)
URL_VAR = "KIT_SHOP_DB_URL"


class SqlHarness(ProxiedHarness):
    entry_point = "sql"
    system = "shop"
    # The system's timeout also bounds start(): a new engine's first connection (through the proxy, with
    # the dialect's own set-up queries) and the table's reflection took over 0.5 s once on a loaded CI
    # machine. The kit's default: the timeout tests then wait a little longer.
    timeout = 1.0
    config = {"url": f"${{{URL_VAR}}}", "table": "kit_customers", "key_column": "email"}
    invalid_configs = (
        ({**config, "table": "kit customers"}, "table"),
        ({"url": f"${{{URL_VAR}}}", "table": "kit_customers"}, "key_column"),
        ({"url": f"${{{URL_VAR}}}", "query": "DELETE FROM kit_customers", "key_column": "email"}, "query"),
        ({**config, "max_batch": 0}, "max_batch"),
        ({**config, "url": "postgresql://kit:${KIT_PASSWORD}@127.0.0.1/x"}, "url"),
    )

    def __init__(self, direct: AsyncEngine, proxy: TcpProxy, proxied_url: str, password: str):
        self.direct = direct
        self.proxy = proxy
        self.env = {URL_VAR: proxied_url, "KIT_PASSWORD": password}
        self.secrets = (password,)
        self._statements = 0

    def count(self, conn: Any, *_: Any) -> None:
        # Statements the adapter sends: the ones on a connection through the proxy.
        if conn.engine.url.port == self.proxy.port:
            self._statements += 1

    def backend_calls(self) -> int:
        return self._statements

    async def seed(self, keys: Sequence[str]) -> None:
        async with self.direct.begin() as conn:
            await conn.execute(kit_customers.insert(), [{"email": k, "name": f"Kit {k}"} for k in keys])


class TestSqlAdapter(AdapterKit):
    @pytest.fixture
    async def harness(self, postgres_url) -> AsyncIterator[SqlHarness]:
        password = f"kit-pw-{uuid.uuid4().hex}"
        url = make_url(postgres_url).set(password=password)  # trust auth ignores it; we must hide it
        direct = create_async_engine(url)
        async with direct.begin() as conn:
            await conn.run_sync(kit_metadata.create_all)
        proxy = await TcpProxy(url.host or "127.0.0.1", url.port or 5432).start()
        harness = SqlHarness(direct, proxy, proxy.url(url.render_as_string(hide_password=False)), password)
        # Every engine's statements pass here; the harness counts those that go through the proxy.
        event.listen(Engine, "before_cursor_execute", harness.count)
        try:
            yield harness
        finally:
            event.remove(Engine, "before_cursor_execute", harness.count)
            await proxy.close()
            await direct.dispose()
