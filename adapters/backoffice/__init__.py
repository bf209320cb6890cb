"""Built-in back office: a work queue for people, and straight-through handling for configured kinds."""

from .adapter import BuiltinBackOffice, BusBackOffice

__all__ = ["BuiltinBackOffice", "BusBackOffice"]
