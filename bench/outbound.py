"""outbound-throughput: an email campaign of 10,000 leads planned and delivered by the hub to a local SMTP
server, on PostgreSQL + RabbitMQ, against aiosmtplib sending the same 10,000 emails to the same server
directly.

The SMTP server is aiosmtpd in a process of its own (bench/smtp_sink.py: it accepts and counts every
message), started once and shared by both sides. Each size of the hub runs in a process of its own (a hub
in-process, on a fresh database and bus namespace, the shipped mapping copied with LM's email capacity
raised to the campaign's size), so its peak RSS is its own. Its customers are written straight into the
store first (the hub's customers and email keys, the built-in CRM's records with an email address, CM's
profiles with an age: every one in the `adults` segment that `savings-plus` asks for); then what is timed
runs as in production, only the dispatcher's rounds asked for instead of waited for: `Campaigns.launch`
for all the customers (CM plans a lead each, the hub writes a `lead.created` each to the outbox), the
relay and the flow `leads-to-lm` hand them to LM (`hub.settle()`), and dispatcher rounds
(`LeadDispatcher.run_once`: LM's claim within capacity, the CRM's current view of the batch's customers,
one SMTP session per batch of `BATCH`, LM's settle) until every lead is SENT. A lead is SENT once the
server accepted its email, so the server has every message when the clock stops (the count it reports
is checked afterwards: exactly one email per lead). Leads/s = leads ÷ that time.

Baseline, in the bench's own process: the same number of emails, each made by the email channel's own
builder (same headers, text and HTML parts, same size) and sent at once, one after the other over one
aiosmtplib connection; msg/s from the connect to the QUIT. Making each email is in both (the hub makes
them as it sends): the comparison is what the hub adds, planning, LM, the CRM's read and LM's records.
For the record, one email made once and sent as bytes over and over shows what the SMTP exchange alone
allows (most of an email's cost here is the email package making and flattening it).

Ratio = hub leads/s at 10,000 ÷ baseline msg/s. Target >= 0.5; and the hub's peak RSS at 10,000 leads
within 1.2 times that at 1,000 (both include the interpreter and the started hub, printed beside them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import auth
import yaml
from procs import free_port
from services import RABBITMQ_URL, fresh_database, fresh_namespace

TARGET = 0.5
RSS_LIMIT = 1.2
OFFER = "savings-plus"
TITLE = "Savings Plus account - 2.5% interest"  # the offer's title in mappings/cm/offers.yaml
BATCH = 500  # HUB_OUTBOUND_BATCH: leads per dispatcher batch, one SMTP session each
# The queues the shipped mapping's flows declare, beyond those fresh_namespace always removes.
QUEUES = ("flow.sales-to-crm", "flow.leads-to-lm", "flow.lead-responses-to-cm")
HERE = Path(__file__).resolve().parent


def _customer(i: int) -> str:
    return f"cus_{i:020x}"


def _email(i: int) -> str:
    return f"bench{i}@example.com"


def _name(i: int) -> str:
    return f"Bench Customer {i}"


# In the database itself (generate_series): nothing of the customers is held in the hub process's memory.
CUSTOMERS = [
    """INSERT INTO customers (id, created_at)
       SELECT 'cus_' || lpad(to_hex(i), 20, '0'), now() FROM generate_series(1, $1) AS i""",
    """INSERT INTO customer_keys (kind, value, customer_id, created_at)
       SELECT 'email', 'bench' || i || '@example.com', 'cus_' || lpad(to_hex(i), 20, '0'), now()
       FROM generate_series(1, $1) AS i""",
    """INSERT INTO crm_customers (id, name, emails, phones, attributes, created_at, updated_at, products)
       SELECT 'cus_' || lpad(to_hex(i), 20, '0'), 'Bench Customer ' || i,
              json_build_array('bench' || i || '@example.com'), '[]'::json,
              json_build_object('age', 18 + i % 60, 'city', 'Utrecht'), now(), now(), '[]'::json
       FROM generate_series(1, $1) AS i""",
    """INSERT INTO cm_profiles (customer_id, state, version, updated_at)
       SELECT 'cus_' || lpad(to_hex(i), 20, '0'),
              json_build_object('attributes', json_build_object('age', 18 + i % 60, 'city', 'Utrecht'),
                                'counters', '{}'::json, 'offers', '{}'::json, 'recent_events', '[]'::json,
                                'requests', '{}'::json, 'version', 1),
              1, now()
       FROM generate_series(1, $1) AS i""",
]


async def _customers(database: str, n: int) -> list[str]:
    """`n` customers as the hub, the CRM and CM would have them after their imports; their golden ids."""
    conn = await asyncpg.connect(database.replace("postgresql+asyncpg", "postgresql"))
    try:
        async with conn.transaction():
            for statement in CUSTOMERS:
                await conn.execute(statement, n)
        await conn.execute("ANALYZE")  # statistics, as a store in use has them (autovacuum is off here)
    finally:
        await conn.close()
    return [_customer(i) for i in range(1, n + 1)]


def _mappings(tmp: Path, n: int) -> Path:
    """The shipped mapping, with LM's email capacity at `n` an hour and print files under `tmp`."""
    from hub.config import SHIPPED_MAPPINGS

    folder = tmp / "mappings"
    shutil.copytree(SHIPPED_MAPPINGS, folder)
    hub_yaml = folder / "hub.yaml"
    data = yaml.safe_load(hub_yaml.read_text())
    data["systems"]["print"]["config"]["folder"] = str(tmp / "print")
    data["systems"]["lm"]["config"]["capacity"]["email_per_hour"] = n
    hub_yaml.write_text(yaml.safe_dump(data, sort_keys=False))
    return folder


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _one_size(n: int, smtp_port: int) -> dict[str, float]:
    from sqlalchemy import func, select

    from hub.config import Settings
    from hub.model import LeadChannel, LeadStatus
    from hub.runtime import Hub
    from hub_adapters.lm.tables import lm_leads

    async with fresh_database() as database, fresh_namespace(*QUEUES) as namespace:
        with tempfile.TemporaryDirectory() as tmp:
            hub = Hub(Settings(
                database_url=database, broker_url=RABBITMQ_URL, bus_namespace=namespace,
                mappings_dir=_mappings(Path(tmp), n), smtp_port=smtp_port, outbound_batch=BATCH,
                outbound_interval_seconds=3600,  # the dispatcher's own rounds: an hour apart; run below
                reload_on_change=False,
                **auth.SETTINGS,  # as in production (bench/auth.py), though no request reaches the API here
            ))
            await hub.start()
            try:
                ids = await _customers(database, n)
                started_rss = _rss_mb()
                sent = select(func.count()).where(lm_leads.c.status == LeadStatus.SENT.value)
                started = time.perf_counter()
                campaign = await hub.wiring.campaigns.launch(OFFER, None, ids, [LeadChannel.EMAIL])
                planned = time.perf_counter()
                planned_rss = _rss_mb()
                await hub.settle(timeout=600)
                handed = time.perf_counter()
                handed_rss = _rss_mb()
                rounds = 0
                while True:
                    async with hub.engine.connect() as conn:
                        if (await conn.execute(sent)).scalar_one() >= n:
                            break
                    assert rounds < 3, f"{rounds} dispatcher rounds and still not every lead SENT"
                    await hub.dispatcher.run_once()
                    rounds += 1
                done = time.perf_counter()
            finally:
                await hub.close()
    assert len(campaign.leads) == n, f"{len(campaign.leads)} leads planned for {n} customers"
    return {
        "leads": n,
        "seconds": done - started,
        "plan": planned - started,
        "hand_over": handed - planned,
        "send": done - handed,
        "rounds": rounds,
        "started_rss_mb": started_rss,
        "planned_rss_mb": planned_rss,
        "handed_rss_mb": handed_rss,
        "rss_mb": _rss_mb(),
    }


class Sink:
    """bench/smtp_sink.py, started once for both sides; `count()`: the messages it accepted so far."""

    def __init__(self) -> None:
        self.port = free_port()
        # Started once, before anything is measured: not worth a thread.
        self._proc = subprocess.Popen([sys.executable, str(HERE / "smtp_sink.py"), str(self.port)],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None and self._proc.stdout.readline().strip() == "ready"

    def count(self) -> int:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write("\n")
        self._proc.stdin.flush()
        return int(self._proc.stdout.readline())

    def stop(self) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        self._proc.wait(timeout=15)


def _run_size(n: int, sink: Sink) -> dict[str, float]:
    before = sink.count()
    argv = [sys.executable, str(Path(__file__).resolve()), "--size", str(n), "--smtp-port", str(sink.port)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=1800, cwd=HERE)
    for line in reversed(out.stdout.splitlines()):
        if line.startswith("{"):
            result = json.loads(line)
            received = sink.count() - before
            assert received == n, f"outbound {n}: the SMTP server received {received} emails"
            return result
    raise RuntimeError(f"outbound {n}: {out.stdout[-2000:]}{out.stderr[-4000:]}")


async def _baseline(n: int, sink: Sink, wire: int) -> tuple[float, float]:
    """aiosmtplib alone: `n` emails as the channel makes them, one after the other over one connection
    (msg/s); and, for the record, one of them made once and sent `wire` times as bytes (what the SMTP
    exchange alone allows)."""
    import aiosmtplib

    from hub.config import Settings
    from hub.model import Delivery, Lead, LeadChannel, Recipient
    from hub.ports import AdapterContext, new_lead_code
    from hub_adapters.channels.email.adapter import EmailChannel, _to_address

    settings = Settings(smtp_port=sink.port)
    channel = EmailChannel(AdapterContext(system="email", settings=settings, engine=None))  # type: ignore[arg-type]
    base = settings.public_url.rstrip("/")
    deliveries = []
    for i in range(1, n + 1):
        code = new_lead_code()
        lead = Lead(id=f"lead_{i:020x}", code=code, campaign_id="cmp_bench", customer_id=_customer(i),
                    offer_id=OFFER, title=TITLE, channel=LeadChannel.EMAIL, decision_id="bench")
        deliveries.append(Delivery(lead, Recipient(_name(i), _email(i), None), f"{base}/r/{code}",
                                   f"{base}/u/{code}"))
    sender = channel.sender.addr_spec
    before = sink.count()
    started = time.perf_counter()
    smtp = aiosmtplib.SMTP(hostname=settings.smtp_host, port=sink.port, local_hostname=channel.sender.domain)
    await smtp.connect()
    for delivery in deliveries:
        to = _to_address(delivery.recipient.name, delivery.recipient.email or "")
        await smtp.send_message(channel._message(delivery, to), sender=sender, recipients=[to.addr_spec])
    await smtp.quit()
    elapsed = time.perf_counter() - started
    received = sink.count() - before
    assert received == n, f"baseline: the SMTP server received {received} of {n} emails"

    to = _to_address(deliveries[0].recipient.name, deliveries[0].recipient.email or "")
    made = channel._message(deliveries[0], to).as_bytes()
    smtp = aiosmtplib.SMTP(hostname=settings.smtp_host, port=sink.port, local_hostname=channel.sender.domain)
    started = time.perf_counter()
    await smtp.connect()
    for _ in range(wire):
        await smtp.sendmail(sender, [to.addr_spec], made)
    await smtp.quit()
    wire_elapsed = time.perf_counter() - started
    return n / elapsed, wire / wire_elapsed


async def run(small: int = 1_000, large: int = 10_000, wire: int = 2_000) -> list[str]:
    sink = Sink()
    try:
        small_run = await asyncio.to_thread(_run_size, small, sink)
        raw, raw_wire = await _baseline(large, sink, wire)
        large_run = await asyncio.to_thread(_run_size, large, sink)
    finally:
        sink.stop()
    rate = large_run["leads"] / large_run["seconds"]
    ratio = rate / raw
    rss = large_run["rss_mb"] / small_run["rss_mb"]
    ok = ratio >= TARGET and rss <= RSS_LIMIT
    lines = [
        f"email campaign, {r['leads']:,} leads: {r['leads'] / r['seconds']:,.0f} leads/s "
        f"({r['seconds']:.1f} s: planned {r['plan']:.1f} s, with LM {r['hand_over']:.1f} s later, "
        f"sent in {r['send']:.1f} s over {r['rounds']:.0f} dispatcher round(s), {BATCH} per SMTP session); "
        f"peak RSS {r['rss_mb']:.0f} MB ({r['started_rss_mb']:.0f} MB before the launch, "
        f"{r['planned_rss_mb']:.0f} MB once planned)"
        for r in (small_run, large_run)
    ]
    return [
        *lines,
        f"aiosmtplib alone, the channel's emails made and sent one after the other over one connection: "
        f"{raw:,.0f} msg/s ({large:,} emails); one email made once and sent as bytes: {raw_wire:,.0f} msg/s "
        f"({wire:,} times; the hub's rate against that: {rate / raw_wire:.2f})",
        f"bench outbound-throughput: ratio={ratio:.2f} target={TARGET} {'PASS' if ok else 'FAIL'} "
        f"({rate:,.0f} leads/s ÷ aiosmtplib {raw:,.0f} msg/s; peak RSS at {large:,} ÷ at {small:,} leads "
        f"= {large_run['rss_mb']:.0f} ÷ {small_run['rss_mb']:.0f} MB = {rss:.2f}, limit {RSS_LIMIT}; "
        f"before the launch {small_run['started_rss_mb']:.0f} and {large_run['started_rss_mb']:.0f} MB)",
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int)
    parser.add_argument("--smtp-port", type=int)
    args = parser.parse_args()
    if args.size:
        os.environ.setdefault("HUB_RELOAD_ON_CHANGE", "false")
        print(json.dumps(asyncio.run(_one_size(args.size, args.smtp_port))), flush=True)
    else:
        for line in asyncio.run(run()):
            print(line)
