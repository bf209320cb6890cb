"""Generic SQL adapter (entry point `sql`): a table or a query of another database, mapped by YAML."""

from .adapter import SqlAdapter
from .config import SqlConfig

__all__ = ["SqlAdapter", "SqlConfig"]
