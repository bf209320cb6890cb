"""Configuration: runtime settings (HUB_*), the mapping loader with line numbers, the mapping's models."""

from hub.config.settings import PROJECT_ROOT, SHIPPED_MAPPINGS, Settings

__all__ = ["PROJECT_ROOT", "SHIPPED_MAPPINGS", "Settings"]
