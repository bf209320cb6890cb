"""Print: one CSV file per print batch, written atomically into the print street's drop folder."""

from .adapter import PrintChannel, PrintConfig

__all__ = ["PrintChannel", "PrintConfig"]
