"""The outbound channel adapters (hub_adapters.channels)."""
