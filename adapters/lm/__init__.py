"""Built-in LM: outbound leads within each channel's capacity, their deliveries and responses."""

from .adapter import BuiltinLM

__all__ = ["BuiltinLM"]
