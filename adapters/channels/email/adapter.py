"""The email channel: outbound leads sent as emails over SMTP.

LM hands out the due email leads in one round; `deliver` sends them in one SMTP session (connect,
STARTTLS or TLS as `smtp_tls` says, login when `smtp_username` is set, one transaction per email,
QUIT). The server comes from the hub's settings (HUB_SMTP_*); a channel's config may give its own From
and subject.

Each email greets the recipient by name and carries the offer's title, the response link (the hub
records the answer and redirects to the landing page) and the unsubscribe link, as plain text with a
simple HTML alternative, plus `List-Unsubscribe` (one-click, RFC 8058), a `Message-ID` (the outcome's
detail: the channel's id for the delivery) and `X-Hub-Lead: <lead code>`.

Outcomes: sent when the server accepted the email; a recipient without an email address, or one the
server refuses for good (5xx), fails for good; a 4xx reply, or a session that cannot be opened or is
lost, fails for now (LM tries those leads again later). Delivery is at least once: a hub that stops
between the server's acceptance and LM recording it sends the email again (same X-Hub-Lead).

Logs name leads, counts and reply codes, never addresses or message bodies (at INFO and above), and
never the password: a reason that could carry it has it masked.
"""

from __future__ import annotations

import asyncio
import email.policy
import html
import secrets
import ssl
from collections.abc import Sequence
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate
from string import Formatter
from typing import ClassVar

import aiosmtplib
from pydantic import Field, field_validator

from hub.ports import (
    AdapterConfig,
    AdapterContext,
    AdapterError,
    Delivery,
    DeliveryOutcome,
    Health,
    LeadChannel,
    OutboundChannel,
)

NO_EMAIL = "no email address"
DEFAULT_SUBJECT = "An offer for you: {title}"
ONE_CLICK = "List-Unsubscribe=One-Click"


def _from_address(value: str) -> Address:
    """`offers@shop.example` or `Shop <offers@shop.example>` as an Address (ValueError when it is none)."""
    wanted = "must be one email address, optionally with a name: Shop <offers@shop.example>"
    if _unsafe(value):
        raise ValueError(wanted)
    header = email.policy.default.header_factory("From", value)
    addresses = header.addresses
    if header.defects or len(addresses) != 1 or not addresses[0].username or not addresses[0].domain:
        raise ValueError(wanted)
    return addresses[0]


def _to_address(name: str | None, addr_spec: str) -> Address:
    """The recipient's address (ValueError when it is not one plain ASCII address)."""
    try:
        return Address(display_name=_one_line(name or ""), addr_spec=addr_spec)
    except Exception as exc:  # the header parser raises several kinds: all mean "not an address"
        raise ValueError("invalid email address") from exc


def _unsafe(text: str) -> bool:
    return "\r" in text or "\n" in text


def _one_line(text: str) -> str:
    """A value for a header: no line breaks (no header injection), no runs of whitespace."""
    return " ".join(text.split())


class EmailConfig(AdapterConfig):
    from_address: str | None = Field(
        default=None,
        max_length=320,
        description="the From of this channel's emails (default: the hub's HUB_SMTP_FROM)",
    )
    subject_template: str = Field(
        default=DEFAULT_SUBJECT,
        min_length=1,
        max_length=200,
        description="the subject; {title} is the offer's title",
    )

    @field_validator("from_address")
    @classmethod
    def _an_address(cls, value: str | None) -> str | None:
        if value is not None:
            _from_address(value)
        return value

    @field_validator("subject_template")
    @classmethod
    def _only_title(cls, value: str) -> str:
        if _unsafe(value):
            raise ValueError("must be one line")
        try:
            fields = {name for _, name, _, _ in Formatter().parse(value) if name is not None}
            value.format(title="")
        except (ValueError, KeyError, IndexError, AttributeError) as exc:
            raise ValueError(f"not a valid template ({exc}); use {{title}} for the offer's title") from None
        if fields - {"title"}:
            raise ValueError("may only use {title} (the offer's title); write {{ and }} for braces")
        return value


class _SessionLost(Exception):
    """The SMTP session broke off: this delivery and the rest of the batch fail for now."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class EmailChannel:
    """Entry point `email-smtp`."""

    ports: ClassVar[tuple[type, ...]] = (OutboundChannel,)
    Config = EmailConfig
    channel: LeadChannel = LeadChannel.EMAIL
    transactional: ClassVar[bool] = False  # an external system: it never takes part in the hub's tx

    def __init__(self, ctx: AdapterContext):
        self.system = ctx.system
        config = ctx.config
        if config is None or isinstance(config, dict):  # built by hand, without a config block
            config = EmailConfig.model_validate(config or {})
        assert isinstance(config, EmailConfig)
        self.config = config
        self._log = ctx.log
        settings = ctx.settings
        self.host = settings.smtp_host
        self.port = settings.smtp_port
        self.tls = settings.smtp_tls
        self.timeout = settings.smtp_timeout_seconds
        self._username = settings.smtp_username or None
        self._password = settings.smtp_password  # SecretStr: revealed only in the login call
        try:
            self.sender = _from_address(config.from_address or settings.smtp_from)
        except ValueError as exc:
            raise AdapterError(self.system, f"HUB_SMTP_FROM {exc}") from None

    def __repr__(self) -> str:
        return f"EmailChannel(system={self.system!r}, server={self.host}:{self.port}, tls={self.tls!r})"

    async def start(self) -> None:
        return None  # a session per batch: nothing to open

    async def close(self) -> None:
        return None

    # --- SMTP ---

    def _client(self) -> aiosmtplib.SMTP:
        return aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            timeout=self.timeout,
            use_tls=self.tls == "tls",
            start_tls=self.tls == "starttls",  # "none" never upgrades, even when offered
            local_hostname=self.sender.domain or None,
        )

    async def _open(self, smtp: aiosmtplib.SMTP) -> None:
        """Connect (with TLS/STARTTLS) and log in; _SessionLost with a reason when it cannot."""
        try:
            await smtp.connect()
            if self._username is not None:
                password = self._password.get_secret_value() if self._password is not None else ""
                await smtp.login(self._username, password)
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise _SessionLost(self._safe(f"SMTP login refused ({exc.code})")) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise _SessionLost(self._failure(exc)) from None

    def _failure(self, exc: BaseException) -> str:
        """What broke a session, naming its kind and the server (never the password)."""
        where = f"SMTP server {self.host}:{self.port}"
        if isinstance(exc, TimeoutError):  # aiosmtplib's timeouts are TimeoutErrors too
            return f"{where} timed out"
        if isinstance(exc, aiosmtplib.SMTPConnectResponseError):
            return self._safe(f"{where} refused the session: {exc.code} {_one_line(exc.message)}")
        if isinstance(exc, ssl.SSLError):
            return f"{where}: TLS failed ({type(exc).__name__})"
        if isinstance(exc, aiosmtplib.SMTPConnectError):
            return f"{where} unreachable (connection failed)"
        if isinstance(exc, aiosmtplib.SMTPServerDisconnected | ConnectionError):
            return f"{where} closed the connection"
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            return self._safe(f"{where} answered {exc.code} {_one_line(exc.message)}")
        if isinstance(exc, aiosmtplib.SMTPException):  # e.g. STARTTLS or AUTH not offered
            return self._safe(f"{where}: {_one_line(exc.message)}")
        return f"{where} unreachable ({type(exc).__name__})"

    def _safe(self, text: str) -> str:
        """`text` with the password masked, should a server ever echo it."""
        if self._password is not None:
            secret = self._password.get_secret_value()
            if secret:
                text = text.replace(secret, "***")
        return text

    async def check(self) -> Health:
        smtp = self._client()
        try:
            async with asyncio.timeout(self.timeout):
                await smtp.connect()
                await smtp.noop()
                await smtp.quit()
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            return Health(False, self._failure(exc))
        finally:
            smtp.close()
        return Health(True, f"SMTP server {self.host}:{self.port} answers")

    # --- messages ---

    def _message(self, delivery: Delivery, to: Address) -> EmailMessage:
        lead = delivery.lead
        title = _one_line(lead.title)
        name = _one_line(delivery.recipient.name or "")
        greeting = f"Hello {name}," if name else "Hello,"
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = _one_line(self.config.subject_template.format(title=title))
        message["Date"] = formatdate(localtime=False, usegmt=True)
        message["Message-ID"] = f"<{secrets.token_hex(16)}@{self.sender.domain}>"
        message["X-Hub-Lead"] = _one_line(lead.code)
        message["List-Unsubscribe"] = f"<{_one_line(delivery.unsubscribe_url)}>"
        message["List-Unsubscribe-Post"] = ONE_CLICK
        message.set_content(
            f"{greeting}\n\n"
            f"We have an offer for you: {title}\n\n"
            f"Interested? Tell us here:\n{delivery.response_url}\n\n"
            f"--\nNo more offers by email? Unsubscribe:\n{delivery.unsubscribe_url}\n"
        )
        e = html.escape
        message.add_alternative(
            "<!DOCTYPE html>\n<html><body>\n"
            f"<p>{e(greeting)}</p>\n"
            f"<p>We have an offer for you: <strong>{e(title)}</strong></p>\n"
            f'<p><a href="{e(delivery.response_url)}">Interested? Tell us here</a></p>\n'
            f'<p style="font-size:small">No more offers by email? '
            f'<a href="{e(delivery.unsubscribe_url)}">Unsubscribe</a></p>\n'
            "</body></html>\n",
            subtype="html",
        )
        return message

    async def _send(self, smtp: aiosmtplib.SMTP, delivery: Delivery) -> DeliveryOutcome:
        lead = delivery.lead
        addr_spec = (delivery.recipient.email or "").strip()
        if not addr_spec:
            return DeliveryOutcome(sent=False, detail=NO_EMAIL)
        try:
            to = _to_address(delivery.recipient.name, addr_spec)
        except ValueError:
            return DeliveryOutcome(sent=False, detail="invalid email address")
        try:
            message = self._message(delivery, to)
        except (ValueError, TypeError) as exc:  # a header that cannot be written
            self._log.warning("system %s: lead %s: cannot write the email (%s)", self.system, lead.id,
                              type(exc).__name__)
            return DeliveryOutcome(sent=False, detail="cannot write the email")
        try:
            await smtp.send_message(message, sender=self.sender.addr_spec, recipients=[to.addr_spec])
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients[0]
            return self._refused(lead.id, refused.code, refused.message)
        except aiosmtplib.SMTPResponseException as exc:  # MAIL FROM, RCPT or DATA refused
            if exc.code == 421:  # the server is closing the session
                raise _SessionLost(self._failure(exc)) from None
            return self._refused(lead.id, exc.code, exc.message)
        except aiosmtplib.SMTPNotSupported:  # e.g. a non-ASCII address, and the server has no SMTPUTF8
            return DeliveryOutcome(sent=False, detail="the SMTP server cannot take this address (SMTPUTF8)")
        except ValueError:  # an address aiosmtplib cannot put in the envelope
            return DeliveryOutcome(sent=False, detail="invalid email address")
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise _SessionLost(self._failure(exc)) from None
        message_id = str(message["Message-ID"])
        self._log.debug("system %s: lead %s sent as %s", self.system, lead.id, message_id)
        return DeliveryOutcome(sent=True, detail=message_id)

    def _refused(self, lead_id: str, code: int, text: str) -> DeliveryOutcome:
        temporary = 400 <= code < 500
        self._log.warning(
            "system %s: lead %s refused by the SMTP server (%d, %s)",
            self.system, lead_id, code, "temporary" if temporary else "permanent",
        )
        reply = self._safe(_one_line(text))[:300]
        kind = "temporarily refused" if temporary else "refused"
        return DeliveryOutcome(sent=False, detail=f"SMTP {kind}: {code} {reply}", temporary=temporary)

    async def deliver(self, batch: Sequence[Delivery]) -> Sequence[DeliveryOutcome]:
        outcomes: list[DeliveryOutcome] = []
        if all(not (d.recipient.email or "").strip() for d in batch):  # nothing to send: no session
            return [DeliveryOutcome(sent=False, detail=NO_EMAIL) for _ in batch]
        smtp = self._client()
        try:
            await self._open(smtp)
            for delivery in batch:
                outcomes.append(await self._send(smtp, delivery))
        except _SessionLost as lost:
            self._log.warning(
                "system %s: SMTP session failed after %d of %d emails: %s",
                self.system, len(outcomes), len(batch), lost.reason,
            )
            later = DeliveryOutcome(sent=False, detail=lost.reason, temporary=True)
            outcomes += [
                later if (d.recipient.email or "").strip() else DeliveryOutcome(sent=False, detail=NO_EMAIL)
                for d in batch[len(outcomes):]
            ]
        else:
            try:
                await smtp.quit()  # the emails are accepted already: a failed QUIT changes nothing
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                self._log.debug("system %s: QUIT failed", self.system, exc_info=True)
        finally:
            smtp.close()  # also on cancellation: no connection left open
        sent = sum(o.sent for o in outcomes)
        self._log.info(
            "system %s: %d of %d emails sent (%d for later)",
            self.system, sent, len(batch), sum(o.temporary for o in outcomes),
        )
        return outcomes
