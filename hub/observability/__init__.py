"""Observability: Prometheus metrics (metrics), OpenTelemetry traces (tracing), JSON logs (logs).

Each module is a small function API the rest of the hub calls with one line; none of them imports the
API, the core or an adapter, so any layer may call them."""
