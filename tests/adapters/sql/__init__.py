"""The generic SQL adapter (hub_adapters.generic.sql) on SQLite and PostgreSQL."""
