"""Call center: a delivered lead is on the agents' call list, which LM keeps (`query callbacks`)."""

from .adapter import CallCenterChannel, CallCenterConfig

__all__ = ["CallCenterChannel", "CallCenterConfig"]
