"""The REST adapter passes the hub's acceptance kit (hub.ports.testing), against the fake system behind
a TcpProxy that makes it slow or dead."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

import pytest

from hub.events import CloudEvent
from hub.ports.proxy import TcpProxy
from hub.ports.testing import AdapterKit, ProxiedHarness
from tests.adapters.rest.server import FakeSystem, serve

TOKEN = "kit-Token-e41b"


class RestHarness(ProxiedHarness):
    entry_point = "rest"
    env = {"KIT_LOYALTY_TOKEN": TOKEN}
    secrets = (TOKEN,)

    def __init__(self, system: FakeSystem, proxy: TcpProxy, base_url: str):
        self.fake, self.proxy = system, proxy
        auth = {"kind": "bearer", "token": "${KIT_LOYALTY_TOKEN}"}
        fetch = {"batch": {"path": "/members?ids={keys}", "records": "items", "key_field": "email"}}
        self.config = {"base_url": base_url, "auth": auth, "fetch": fetch, "events": {"path": "/events"},
                       "health_path": "/health"}
        self.invalid_configs = [
            ({**self.config, "base_url": "ftp://loyalty.example"}, "base_url"),
            ({**self.config, "fetch": {"by_key": {"path": "/members"}}}, "fetch.by_key.path"),
            ({**self.config, "auth": {**auth, "header": "X-Key"}}, "auth.bearer.header"),
        ]

    async def seed(self, keys: Sequence[str]) -> None:
        for key in keys:
            self.fake.add(key, firstName="Kit")

    def backend_calls(self) -> int | None:
        return len(self.fake.requests("/members"))


    async def sample_event(self) -> CloudEvent:
        return CloudEvent(type="customer.updated", source="urn:kit", subject="cus_00000000000000000001",
                          data={"customerId": "cus_00000000000000000001"})

    async def effects(self, event_id: str) -> int:
        return int(event_id in self.fake.events)


class TestRestAdapter(AdapterKit):
    @pytest.fixture
    async def harness(self):
        system = FakeSystem(auth=("bearer", TOKEN))
        async with serve(system) as url:
            port = urlsplit(url).port
            assert port is not None
            proxy = await TcpProxy("127.0.0.1", port).start()
            try:
                yield RestHarness(system, proxy, proxy.url(url))
            finally:
                await proxy.close()
