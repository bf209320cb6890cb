"""Adapters, one sub-package per system (importable as `hub_adapters`; `adapters` is taken on PyPI)."""
