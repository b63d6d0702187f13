"""Digest delivery: smtplib talking to a real aiosmtpd server on loopback, and files on disk."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from test_digest_render import DIGEST, parts

from alerts.digest import render_digest
from alerts.mail import FileSender, MailError, SmtpSender

USER, PASSWORD = "monitor", "s3cret"


class Inbox:
    """An aiosmtpd handler that keeps what it accepts and refuses chosen recipients."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self.logins: list[bool] = []  # whether each accepted message came from an authenticated session
        self.refuse: dict[str, str] = {}  # address -> the reply to RCPT TO

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        self.logins.append(bool(session.authenticated))
        return "250 Message accepted"

    def received(self) -> EmailMessage:
        (envelope,) = self.envelopes
        assert isinstance(envelope.content, bytes)
        message = message_from_bytes(envelope.content, policy=default)
        assert isinstance(message, EmailMessage)
        return message


def free_port() -> int:
    """A port nothing listens on (Controller cannot report the port it got for port 0)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def authenticate(server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (USER.encode(), PASSWORD.encode())
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd sends the 235/535 reply


def serve(inbox: Inbox, **smtp: Any) -> Iterator[int]:
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port(), server_hostname="mx.test", **smtp)
    controller.start()
    try:
        yield controller.port
    finally:
        controller.stop()


@pytest.fixture
def inbox() -> Inbox:
    return Inbox()


@pytest.fixture
def port(inbox: Inbox) -> Iterator[int]:
    """A plain SMTP server (no TLS, no AUTH)."""
    yield from serve(inbox)


@pytest.fixture
def auth_port(inbox: Inbox) -> Iterator[int]:
    """A server offering AUTH. aiosmtpd offers it only over TLS unless told otherwise; the
    login itself is what is tested here, so it is allowed in clear on loopback."""
    yield from serve(inbox, authenticator=authenticate, auth_require_tls=False)


def digest_message(*recipients: str) -> EmailMessage:
    return render_digest(DIGEST, subject="Narrative Monitor digest for 2026-11-24",
                         sender="monitor@example.org", recipients=recipients or ["analysts@example.org"])


def test_delivers_the_digest(inbox: Inbox, port: int) -> None:
    where = SmtpSender("127.0.0.1", port, starttls=False, timeout=5).send(digest_message())
    assert where == f"smtp 127.0.0.1:{port} (1 recipients)"
    (envelope,) = inbox.envelopes
    assert envelope.mail_from == "monitor@example.org"
    assert envelope.rcpt_tos == ["analysts@example.org"]
    received = inbox.received()
    assert received["Subject"] == "Narrative Monitor digest for 2026-11-24"
    text, html = parts(received)
    assert "Tuesday 24 November 2026" in text and "Tuesday 24 November 2026" in html
    image = next(part for part in received.walk() if part.get_content_type() == "image/png")
    assert f'src="cid:{str(image["Content-ID"])[1:-1]}"' in html
    assert image.get_content().startswith(b"\x89PNG")


def test_login(inbox: Inbox, auth_port: int) -> None:
    sender = SmtpSender("127.0.0.1", auth_port, starttls=False, username=USER, password=PASSWORD, timeout=5)
    sender.send(digest_message())
    assert inbox.logins == [True]
    assert PASSWORD not in repr(sender)


def test_wrong_password_is_not_retryable(inbox: Inbox, auth_port: int) -> None:
    sender = SmtpSender("127.0.0.1", auth_port, starttls=False, username=USER, password="wrong", timeout=5)
    with pytest.raises(MailError) as caught:
        sender.send(digest_message())
    assert not caught.value.retryable
    assert "login refused: 535" in caught.value.reason
    assert inbox.envelopes == []


def test_refused_recipient_is_not_retryable(inbox: Inbox, port: int) -> None:
    inbox.refuse["analysts@example.org"] = "550 5.1.1 No such user"
    with pytest.raises(MailError) as caught:
        SmtpSender("127.0.0.1", port, starttls=False, timeout=5).send(digest_message())
    assert not caught.value.retryable
    assert "analysts@example.org (550 5.1.1 No such user)" in caught.value.reason
    assert inbox.envelopes == []


def test_temporary_refusal_is_retryable(inbox: Inbox, port: int) -> None:
    inbox.refuse["analysts@example.org"] = "450 4.2.1 Mailbox busy, try later"
    with pytest.raises(MailError) as caught:
        SmtpSender("127.0.0.1", port, starttls=False, timeout=5).send(digest_message())
    assert caught.value.retryable


def test_partly_refused_delivers_to_the_rest(inbox: Inbox, port: int) -> None:
    inbox.refuse["gone@example.org"] = "550 5.1.1 No such user"
    message = digest_message("analysts@example.org", "gone@example.org")
    where = SmtpSender("127.0.0.1", port, starttls=False, timeout=5).send(message)
    assert where.endswith("(1 recipients); refused gone@example.org (550 5.1.1 No such user)")
    assert inbox.envelopes[0].rcpt_tos == ["analysts@example.org"]


def test_server_down_is_retryable() -> None:
    with pytest.raises(MailError) as caught:
        SmtpSender("127.0.0.1", free_port(), starttls=False, timeout=5).send(digest_message())
    assert caught.value.retryable
    assert "connection failed" in caught.value.reason


def test_missing_starttls_is_not_retryable(inbox: Inbox, port: int) -> None:
    """A server that offers no STARTTLS gets nothing in clear: it needs a person, not a retry."""
    with pytest.raises(MailError) as caught:
        SmtpSender("127.0.0.1", port, timeout=5).send(digest_message())
    assert not caught.value.retryable
    assert inbox.envelopes == []


def test_no_recipients_is_not_retryable() -> None:
    message = render_digest(DIGEST, subject="s", sender="monitor@example.org", recipients=[])
    with pytest.raises(MailError) as caught:
        SmtpSender("127.0.0.1", free_port(), starttls=False, timeout=5).send(message)
    assert not caught.value.retryable


def test_file_sender_writes_eml_and_html(tmp_path: Path) -> None:
    folder = tmp_path / "outbox"
    sender = FileSender(folder)
    first, second = Path(sender.send(digest_message())), Path(sender.send(digest_message()))
    assert first != second
    assert first.parent == folder and first.suffix == ".eml"
    assert first.name.endswith("-narrative-monitor-digest-for-2026-11-24.eml")
    assert sorted(path.name for path in folder.iterdir()) == sorted(
        [first.name, first.with_suffix(".html").name, second.name, second.with_suffix(".html").name]
    )
    raw = first.read_bytes()
    assert b"Subject: Narrative Monitor digest for 2026-11-24\r\n" in raw
    assert b"\n" not in raw.replace(b"\r\n", b"")  # SMTP line endings throughout
    message = message_from_bytes(raw, policy=default)
    assert isinstance(message, EmailMessage)
    text, html = parts(message)
    assert "Tuesday 24 November 2026" in text
    assert first.with_suffix(".html").read_text(encoding="utf-8") == html.replace("\r\n", "\n")
    assert html.lstrip().startswith("<!DOCTYPE html>")


def test_file_sender_unwritable_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(MailError) as caught:
        FileSender(blocker / "outbox").send(digest_message())
    assert "cannot write" in caught.value.reason
