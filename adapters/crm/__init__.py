"""Built-in CRM: customers, keys' master data and contacts."""

from .adapter import BuiltinCRM

__all__ = ["BuiltinCRM"]
