"""The operations and marketing page at /ops (hub.api.ops.routes): server-rendered HTML with inline SVG
charts and CSV downloads, every asset served by the hub. See README, "Operations page"."""

from hub.api.ops.routes import routes

__all__ = ["routes"]
