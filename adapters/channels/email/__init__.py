"""Email: outbound leads sent over SMTP, one session per batch (server from the HUB_SMTP_* settings)."""

from .adapter import EmailChannel, EmailConfig

__all__ = ["EmailChannel", "EmailConfig"]
