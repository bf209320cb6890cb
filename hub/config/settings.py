"""Runtime settings, read from HUB_* environment variables."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from hub.config.shipped import PROJECT_ROOT, shipped_mappings

DB_POOL_SIZE, DB_MAX_OVERFLOW = 20, 10  # the store's pool per process (hub.store.db)

__all__ = ["PROJECT_ROOT", "SHIPPED_MAPPINGS", "Settings"]

# The checkout's mappings/, or the installed package hub_mappings (hub.config.shipped).
SHIPPED_MAPPINGS = shipped_mappings()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HUB_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///./var/hub.db"
    # PostgreSQL connections per hub process: kept open, and opened beyond them under a burst (closed
    # again when returned). Every `hub serve --workers` process has its own pool: workers times both must
    # stay under the server's max_connections, with room for the CLI and operators.
    db_pool_size: int = Field(default=DB_POOL_SIZE, ge=1)
    db_max_overflow: int = Field(default=DB_MAX_OVERFLOW, ge=0)
    broker_url: str = "memory://"
    # Prefix of every exchange and queue name, so several hubs (or test runs) can share a broker.
    bus_namespace: str = "hub"
    mappings_dir: Path = SHIPPED_MAPPINGS
    default_phone_region: str = "NL"
    source: str = "urn:markiting-hub"
    # Limits that protect the hub from one caller.
    max_events_per_call: int = 100
    max_query_depth: int = 10
    # (hub.api.limits, hub.api.inputs) The most one operation may cost: each field 1, each list
    # multiplying what is selected under it by its size (its limit or ids, else an estimate per field);
    # aliases in one document; items in any list input without a limit of its own.
    max_query_cost: int = 20_000
    max_aliases: int = 30
    max_input_list: int = 1000
    # Introspection (__schema, __type); off refuses it with INTROSPECTION_DISABLED (GraphiQL then has
    # no schema to offer).
    introspection: bool = True
    # Origins that may call from a browser, over HTTP (CORS) and the websocket (Origin check);
    # comma-separated, or "*". Empty: same origin only.
    cors_origins: str = ""
    # Slow and idle connections: a request body must arrive within body_timeout_seconds (408); a
    # websocket must send connection_init within ws_init_timeout_seconds (close 4408); an idle
    # keep-alive HTTP connection is closed after keep_alive_seconds (uvicorn).
    body_timeout_seconds: float = 30.0
    ws_init_timeout_seconds: float = 10.0
    keep_alive_seconds: float = 5.0
    # How long an adapter read stays cached; events about a customer clear it sooner.
    cache_ttl_seconds: float = 30.0
    # How long CM's answer for a customer is reused (CM's own learning snapshot is as old); a change of
    # the customer's CM data forgets it at once. 0 asks CM every time.
    decision_cache_seconds: float = 1.0
    # How long an answer waits for CM's NBAs (ms); past it the mapping's default actions are answered
    # (marked fallback) and CM's late decision is pushed to subscribers. 0 waits for CM (up to its timeout).
    nba_budget_ms: float = 200.0
    cache_max_entries: int = 50_000
    # Whole answers kept at the edge (hub.api.answers), reused while their reads stay current; 0 = off.
    answer_cache_entries: int = 10_000
    answer_max_bytes: int = 256 * 1024
    # The largest request body the hub reads (HTTP 413 above it).
    max_body_bytes: int = 1024 * 1024
    # Outbox relay: how many events per round and how long it idles when nothing wakes it.
    relay_batch: int = 1000
    # How long history is kept (hub.messaging.retention): sent outbox rows, and the ids of applied
    # messages (longer than any message waits for redelivery or a dead letter for its replay).
    outbox_retention_seconds: float = 86_400.0
    processed_retention_seconds: float = 14 * 86_400.0
    relay_idle_seconds: float = 0.5
    # How long a call that writes events waits while this process is behind delivering earlier ones
    # (hub.messaging.pacing), and from how many unpublished events a relay round counts as behind; 0
    # never waits.
    pacing_max_wait_seconds: float = 2.0
    pacing_backlog: int = 250
    # Consumer behaviour (both bus engines).
    delivery_limit: int = 5
    retry_backoff_seconds: float = 0.2
    prefetch: int = 200
    # At most this many ready messages of a queue are applied in one transaction (a failing batch is
    # delivered again one by one).
    consume_batch: int = 100
    demo: bool = False
    # Mapping hot reload: on SIGHUP always; on a change of a file in mappings_dir when this is on.
    reload_on_change: bool = True
    # How long adapters of a replaced mapping stay open for requests still running on them.
    reload_grace_seconds: float = 30.0
    # A stopping hub (SIGTERM) waits at most this long for requests and websockets in flight, then at
    # most this long again for its parts to close (relay, consumers, bus, store): within an orchestrator's
    # usual 30 s grace even when the broker has gone silent.
    shutdown_seconds: float = Field(default=10.0, gt=0)
    # The hub's own address as customers reach it: the base of the links in outbound messages (the
    # response link that records an answer, the unsubscribe link).
    public_url: str = "http://127.0.0.1:8000"
    # Outbound leads: how often LM is asked for due leads per channel, and at most how many per round
    # (one round is one batch: one SMTP session, one print file).
    outbound_interval_seconds: float = 5.0
    outbound_batch: int = 100
    # Where a customer who follows an email's response link lands (offer= and code= are added); empty:
    # the hub's own /thanks page.
    landing_url: str = ""
    # The SMTP server of the email channel (adapter email-smtp). smtp_tls: "none" (plain), "starttls"
    # (upgrade after connecting; fails when the server does not offer it) or "tls" (TLS from the start,
    # usually port 465). Login only when smtp_username is set. smtp_from is the From of every email
    # ("offers@shop.example" or "Shop <offers@shop.example>"); a channel's config may override it.
    # smtp_timeout_seconds bounds each step of a session (connect, each command) and the health check.
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_tls: Literal["none", "starttls", "tls"] = "none"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = "offers@markiting-hub.local"
    smtp_timeout_seconds: float = 10.0
    # Privacy (hub.core.privacy): how long an export's document (personal data) is kept for download
    # after it completed; its parts are deleted then.
    privacy_export_retention_seconds: float = 7 * 86_400.0
    # --- security (hub.security; README "Security") ---
    # "required": every GraphQL operation and operator endpoint needs a credential (an API key from
    # `hub keys create`, or a JWT from the identity provider below). "off": anyone who reaches the port
    # may do everything; unset, it is "required" except under `hub serve --demo` (logged as a warning).
    auth: Literal["required", "off"] | None = None
    # How often each process looks for created or revoked keys (PostgreSQL also tells it at once).
    auth_refresh_seconds: float = 0.5
    # JWTs from the company's identity provider: on when jwt_jwks_url is set. Scopes come from the
    # claim jwt_scopes_claim ("scope": space-separated, or a list); a token may bind its caller to a
    # channel by jwt_channel_claim.
    jwt_jwks_url: str = ""
    jwt_issuer: str = ""
    jwt_audience: str = ""
    jwt_algorithms: str = "RS256,ES256"
    jwt_scopes_claim: str = "scope"
    jwt_channel_claim: str = "hub_channel"
    jwt_jwks_cache_seconds: float = 300.0
    # Requests per second per credential, with a burst of twice that (HTTP 429 past it), shared out
    # among the live hub processes; 0 = no limit.
    rate_limit: float = 500.0
    # Websockets and subscriptions one credential may hold open, per process.
    max_ws_connections_per_credential: int = 50
    max_subscriptions_per_credential: int = 200
    # Key values that never identify anyone (placeholders typed into forms), compared after
    # normalisation, case-insensitive; comma-separated.
    blocked_key_values: str = (
        "test@test.com,test@example.com,noreply@example.com,no-reply@example.com,0000000000,"
        "+310000000000,1234567890,undefined,null,none,unknown,n/a,na,0,-"
    )
    # --- observability (hub.observability; README "Metrics and traces") ---
    # Prometheus metrics on a listener of their own (no credential: an internal network's port) instead
    # of /metrics on the hub's port (scope operations:read); its interface.
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    # "json": one JSON object per log line (with trace id, operation, system where known).
    log_format: Literal["text", "json"] = "text"

    @model_validator(mode="after")
    def _room_beside_the_relay(self) -> Settings:
        # The leading outbox relay keeps one of the pool's connections (hub.messaging.outbox): a pool with
        # room for one only would leave the API none.
        if self.db_pool_size + self.db_max_overflow < 2:
            raise ValueError(
                "HUB_DB_POOL_SIZE + HUB_DB_MAX_OVERFLOW must be at least 2: the leading outbox relay keeps "
                "one connection, and the API needs another"
            )
        return self

    @property
    def auth_required(self) -> bool:
        return self.auth == "required" or (self.auth is None and not self.demo)

    @cached_property  # asked on every startContact
    def blocked_values(self) -> frozenset[str]:
        return frozenset(v.strip().lower() for v in self.blocked_key_values.split(",") if v.strip())
