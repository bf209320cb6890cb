"""The email channel (email-smtp) against a real SMTP server (aiosmtpd, on a free port of this host)."""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Iterator, Mapping
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from hub.config.settings import Settings
from hub.ports import AdapterContext, Delivery, Lead, LeadChannel, OutboundChannel, Recipient
from hub.ports.proxy import TcpProxy
from hub.ports.testing import AdapterKit, ProxiedHarness
from hub_adapters.channels.email import EmailChannel, EmailConfig

PASSWORD = "Smtp-Pass-7f3a91"  # a value that must never show anywhere
USERNAME = "hub-mailer"
LOG = "tests.email"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Mailbox:
    """aiosmtpd handler: keeps what it accepts; `replies[address]` answers RCPT for that address."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.replies: dict[str, str] = {}

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.replies.get(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = message_from_bytes(envelope.content, policy=default_policy)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"


class Logins:
    """aiosmtpd authenticator: accepts USERNAME/PASSWORD only, counts attempts."""

    def __init__(self) -> None:
        self.attempts = 0

    def __call__(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        self.attempts += 1
        ok = isinstance(auth_data, LoginPassword) and auth_data == (USERNAME.encode(), PASSWORD.encode())
        return AuthResult(success=ok, handled=False)


@contextlib.contextmanager
def smtp_server(authenticator: Any = None) -> Iterator[tuple[Controller, Mailbox]]:
    mailbox = Mailbox()
    extra: dict[str, Any] = {}
    if authenticator is not None:
        extra = {"authenticator": authenticator, "auth_require_tls": False}
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port(), **extra)
    controller.start()
    try:
        yield controller, mailbox
    finally:
        with contextlib.suppress(Exception):
            controller.stop()


@pytest.fixture
def server() -> Iterator[tuple[Controller, Mailbox]]:
    with smtp_server() as running:
        yield running


def channel(port: int, config: Mapping[str, Any] | None = None, **settings: Any) -> EmailChannel:
    values = {"smtp_host": "127.0.0.1", "smtp_port": port, "smtp_timeout_seconds": 5.0, **settings}
    ctx = AdapterContext(
        system="email",
        settings=Settings(**values),
        engine=None,  # type: ignore[arg-type]  # an external system: no store
        config=EmailConfig.model_validate(dict(config or {})),
        log=logging.getLogger(LOG),
    )
    return EmailChannel(ctx)


def delivery(n: int, email: str | None, name: str | None = "Ann de Vries", title: str = "Solar panels -20%"):
    lead = Lead(
        id=f"lead_{n:04d}", code=f"K7M2-QX{n:02d}", campaign_id="cmp_1", customer_id=f"cus_{n}",
        offer_id="solar", title=title, channel=LeadChannel.EMAIL, decision_id=f"dec_{n}",
    )
    return Delivery(
        lead=lead,
        recipient=Recipient(name=name, email=email, address=None),
        response_url=f"https://hub.example/r/{lead.code}",
        unsubscribe_url=f"https://hub.example/u/{lead.code}",
    )


def plain(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


def html_part(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("html",))
    assert body is not None
    return str(body.get_content())


async def test_is_an_outbound_email_channel(server) -> None:
    controller, _ = server
    adapter = channel(controller.port)
    assert EmailChannel.ports == (OutboundChannel,)
    assert adapter.channel is LeadChannel.EMAIL
    assert isinstance(adapter, OutboundChannel)


async def test_an_email_carries_the_offer_the_links_and_the_headers(server) -> None:
    controller, mailbox = server
    adapter = channel(controller.port, smtp_from="Shop <offers@shop.example>")
    d = delivery(1, "ann@example.com")
    [outcome] = await adapter.deliver([d])

    assert outcome.sent and not outcome.temporary
    [message] = mailbox.messages
    assert mailbox.envelopes == [("offers@shop.example", ["ann@example.com"])]
    assert message["To"] == "Ann de Vries <ann@example.com>"
    assert message["From"] == "Shop <offers@shop.example>"
    assert message["Subject"] == "An offer for you: Solar panels -20%"
    assert message["List-Unsubscribe"] == "<https://hub.example/u/K7M2-QX01>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["X-Hub-Lead"] == "K7M2-QX01"
    assert message["Date"]
    assert outcome.detail == message["Message-ID"]
    assert str(outcome.detail).startswith("<") and str(outcome.detail).endswith("@shop.example>")
    text = plain(message)
    assert "Hello Ann de Vries," in text
    assert "Solar panels -20%" in text
    assert d.response_url in text and d.unsubscribe_url in text
    page = html_part(message)
    assert f'href="{d.response_url}"' in page and f'href="{d.unsubscribe_url}"' in page
    assert "Solar panels -20%" in page and "Ann de Vries" in page


async def test_config_overrides_from_and_subject(server) -> None:
    controller, mailbox = server
    config = {"from_address": "Deals <deals@shop.example>", "subject_template": "Just for you: {title}!"}
    adapter = channel(controller.port, config)
    [outcome] = await adapter.deliver([delivery(1, "bob@example.com", name=None)])

    assert outcome.sent
    [message] = mailbox.messages
    assert message["From"] == "Deals <deals@shop.example>"
    assert message["Subject"] == "Just for you: Solar panels -20%!"
    assert message["To"] == "bob@example.com"
    assert plain(message).splitlines()[0] == "Hello,"  # no name: a greeting without one


async def test_titles_and_names_are_escaped_and_cannot_inject_headers(server) -> None:
    controller, mailbox = server
    adapter = channel(controller.port)
    title = "<b>Big</b> & bold\r\nBcc: victim@example.com"
    [outcome] = await adapter.deliver([delivery(1, "ann@example.com", name="Ann\nBcc: x@y", title=title)])

    assert outcome.sent
    [message] = mailbox.messages
    assert message["Bcc"] is None
    assert "\n" not in message["Subject"] and "\n" not in message["To"]
    assert mailbox.envelopes[0][1] == ["ann@example.com"]
    assert "&lt;b&gt;Big&lt;/b&gt; &amp; bold" in html_part(message)


async def test_one_session_a_temporary_and_a_permanent_refusal_in_order(server) -> None:
    controller, mailbox = server
    mailbox.replies = {
        "later@example.com": "451 4.7.1 Greylisted, try again later",
        "gone@example.com": "550 5.1.1 No such user",
    }
    adapter = channel(controller.port)
    batch = [delivery(1, "ann@example.com"), delivery(2, "later@example.com"), delivery(3, "gone@example.com")]
    outcomes = await adapter.deliver(batch)

    assert [(o.sent, o.temporary) for o in outcomes] == [(True, False), (False, True), (False, False)]
    assert "451" in str(outcomes[1].detail) and "Greylisted" in str(outcomes[1].detail)
    assert "550" in str(outcomes[2].detail) and "No such user" in str(outcomes[2].detail)
    assert [m["X-Hub-Lead"] for m in mailbox.messages] == ["K7M2-QX01"]


async def test_after_a_refusal_the_session_goes_on(server) -> None:
    controller, mailbox = server
    mailbox.replies = {"gone@example.com": "550 5.1.1 No such user"}
    adapter = channel(controller.port)
    batch = [delivery(1, "gone@example.com"), delivery(2, "ann@example.com"), delivery(3, "bob@example.com")]
    outcomes = await adapter.deliver(batch)

    assert [o.sent for o in outcomes] == [False, True, True]
    assert [m["X-Hub-Lead"] for m in mailbox.messages] == ["K7M2-QX02", "K7M2-QX03"]
    assert len({o.detail for o in outcomes[1:]}) == 2, "each email has its own Message-ID"


async def test_no_or_a_bad_address_fails_for_good(server) -> None:
    controller, mailbox = server
    adapter = channel(controller.port)
    batch = [delivery(1, None), delivery(2, "  "), delivery(3, "not an address"), delivery(4, "ann@example.com")]
    outcomes = await adapter.deliver(batch)

    assert [(o.sent, o.temporary, o.detail) for o in outcomes[:3]] == [
        (False, False, "no email address"),
        (False, False, "no email address"),
        (False, False, "invalid email address"),
    ]
    assert outcomes[3].sent
    assert len(mailbox.messages) == 1


async def test_a_batch_without_addresses_opens_no_session() -> None:
    adapter = channel(free_port())  # nothing listens there: a session would fail for now
    outcomes = await adapter.deliver([delivery(1, None), delivery(2, "")])
    assert [(o.sent, o.temporary, o.detail) for o in outcomes] == [(False, False, "no email address")] * 2


async def test_a_stopped_server_fails_the_whole_batch_for_now() -> None:
    with smtp_server() as (controller, _):
        port = controller.port
    adapter = channel(port)
    batch = [delivery(1, "ann@example.com"), delivery(2, "bob@example.com"), delivery(3, None)]
    outcomes = await adapter.deliver(batch)

    assert [(o.sent, o.temporary) for o in outcomes[:2]] == [(False, True), (False, True)]
    assert f"127.0.0.1:{port}" in str(outcomes[0].detail) and "connection failed" in str(outcomes[0].detail)
    assert (outcomes[2].sent, outcomes[2].temporary, outcomes[2].detail) == (False, False, "no email address")
    health = await adapter.check()
    assert not health.ok and f"127.0.0.1:{port}" in health.detail


async def test_a_server_that_never_greets_times_out_for_now() -> None:
    with socket.socket() as silent:  # accepts connections (backlog) and says nothing
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        adapter = channel(port, smtp_timeout_seconds=0.5)
        outcomes = await adapter.deliver([delivery(1, "ann@example.com"), delivery(2, "bob@example.com")])
        health = await adapter.check()
    assert [(o.sent, o.temporary) for o in outcomes] == [(False, True), (False, True)]
    assert "timed out" in str(outcomes[0].detail)
    assert not health.ok and "timed out" in health.detail


async def test_starttls_required_but_not_offered_fails_for_now(server) -> None:
    controller, mailbox = server  # aiosmtpd without a TLS context offers no STARTTLS
    adapter = channel(controller.port, smtp_tls="starttls")
    outcomes = await adapter.deliver([delivery(1, "ann@example.com")])
    assert [(o.sent, o.temporary) for o in outcomes] == [(False, True)]
    assert "STARTTLS" in str(outcomes[0].detail)
    assert mailbox.messages == []
    assert not (await adapter.check()).ok


async def test_check_says_the_server_answers(server) -> None:
    controller, mailbox = server
    health = await channel(controller.port).check()
    assert health.ok, health
    assert mailbox.messages == []


async def test_login_and_the_password_never_shows(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    logins = Logins()
    with smtp_server(logins) as (controller, mailbox):
        good = channel(controller.port, smtp_username=USERNAME, smtp_password=PASSWORD)
        sent = await good.deliver([delivery(1, "ann@example.com")])
        wrong = channel(controller.port, smtp_username=USERNAME, smtp_password=PASSWORD + "-old")
        refused = await wrong.deliver([delivery(2, "ann@example.com"), delivery(3, "bob@example.com")])
        health = await good.check()
    assert sent[0].sent and len(mailbox.messages) == 1
    assert logins.attempts >= 2  # the good login, and the wrong one (aiosmtplib tries each method)
    assert [(o.sent, o.temporary) for o in refused] == [(False, True), (False, True)]
    assert "login refused (535)" in str(refused[0].detail)
    assert health.ok
    seen = [repr(good), str(good), repr(good.config), repr(sent), repr(refused), repr(health)]
    # Every log record but the test server's own (aiosmtpd logs the AUTH exchange at DEBUG).
    seen += [r.getMessage() for r in caplog.records if not r.name.startswith("mail.log")]
    seen += [str(r.exc_info) for r in caplog.records if r.exc_info]
    for text in seen:
        assert PASSWORD not in text
        assert "ann@example.com" not in text and "bob@example.com" not in text  # no addresses either


async def test_logs_at_info_carry_no_addresses_or_bodies(server, caplog: pytest.LogCaptureFixture) -> None:
    controller, mailbox = server
    mailbox.replies = {"gone@example.com": "550 5.1.1 <gone@example.com>: no such user"}
    caplog.set_level(logging.INFO, logger=LOG)
    await channel(controller.port).deliver([delivery(1, "ann@example.com"), delivery(2, "gone@example.com")])
    ours = [r.getMessage() for r in caplog.records if r.name == LOG]
    assert ours, "the batch is logged (counts)"
    for text in ours:
        assert "@example.com" not in text and "Solar panels" not in text and "hub.example" not in text


def test_config_is_checked() -> None:
    EmailConfig(from_address="offers@shop.example", subject_template="{title} for you")
    for bad in ({"from_address": "not an address"}, {"from_address": "a@b, c@d"},
                {"subject_template": "Hi {name}"}, {"subject_template": "{title"},
                {"subject_template": "two\nlines {title}"}, {"sender": "x@y"}):
        with pytest.raises(ValueError):
            EmailConfig.model_validate(bad)


# --- the acceptance kit (hub.ports.testing): build through the registry, secrets, a dead server ---


class EmailHarness(ProxiedHarness):
    entry_point = "email-smtp"
    system = "email"
    secrets = (PASSWORD,)
    config = {"from_address": "Kit Shop <kit@shop.example>", "subject_template": "Kit: {title}"}
    invalid_configs = [
        ({"from_address": "not an address"}, "from_address"),
        ({"subject_template": "Hi {name}"}, "subject_template"),
    ]

    def __init__(self, proxy: TcpProxy):
        self.proxy = proxy
        self.env = {
            "HUB_SMTP_HOST": "127.0.0.1",
            "HUB_SMTP_PORT": str(proxy.port),
            "HUB_SMTP_USERNAME": USERNAME,
            "HUB_SMTP_PASSWORD": PASSWORD,
            "HUB_SMTP_TIMEOUT_SECONDS": "2",
        }


class TestEmailChannelKit(AdapterKit):
    @pytest.fixture
    async def harness(self):
        with smtp_server(Logins()) as (controller, _):
            proxy = await TcpProxy("127.0.0.1", controller.port).start()
            try:
                yield EmailHarness(proxy)
            finally:
                await proxy.close()
