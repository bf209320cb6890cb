"""The built-in campaign-management system (CM): catalog, decision policy and its adapter."""

from hub_adapters.cm.adapter import BuiltinCM, CMConfig, ConcurrentUpdate
from hub_adapters.cm.catalog import Catalog, load_catalog, parse_catalog

__all__ = ["BuiltinCM", "CMConfig", "Catalog", "ConcurrentUpdate", "load_catalog", "parse_catalog"]
