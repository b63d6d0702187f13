"""Delivering email: one narrow interface, two ways to send.

    MailSender    the seam: send(message) -> where it went, in a few words
    ├── SmtpSender  smtplib, with STARTTLS or implicit TLS and optional login
    └── FileSender  writes .eml and .html files to a folder (no SMTP server configured)

Every failure comes out as `MailError`, never as an smtplib, ssl or socket exception. It
says whether trying again later can succeed: connection failures, timeouts and 4xx replies
can; 5xx replies, refused logins and TLS problems need a person. The senders never retry by
themselves: the caller records the failure and tries again on its own schedule.
"""

from __future__ import annotations

import logging
import os
import re
import smtplib
import ssl
import tempfile
import threading
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import getaddresses
from pathlib import Path
from typing import Protocol

logger = logging.getLogger(__name__)

_SLUG_CHARS = re.compile(r"[^a-z0-9]+")
_SLUG_LIMIT = 60


class MailError(Exception):
    """A message was not delivered. `reason` says why, for logs and the digest's record."""

    def __init__(self, reason: str, *, retryable: bool) -> None:
        self.reason = reason
        self.retryable = retryable
        super().__init__(f"mail: {reason} ({'retryable' if retryable else 'not retryable'})")


class MailSender(Protocol):
    """Sends a complete message to the recipients in its headers."""

    def send(self, message: EmailMessage) -> str:
        """Deliver `message`; return a short description of where it went."""
        ...


class SmtpSender:
    """Submits messages to an SMTP server: port 587 with STARTTLS, or 465 with `ssl=True`."""

    def __init__(
        self,
        host: str,
        port: int = 587,
        *,
        starttls: bool = True,
        ssl: bool = False,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.host = host
        self.port = port
        self.starttls = starttls and not ssl  # implicit TLS needs no upgrade
        self.ssl = ssl
        self.username = username
        self._password = password
        self.timeout = timeout
        if username and not (ssl or starttls):
            logger.warning("SMTP login to %s:%s will send the password without TLS", host, port)

    def __repr__(self) -> str:  # never shows the password
        return f"SmtpSender({self.host!r}, {self.port}, starttls={self.starttls}, ssl={self.ssl})"

    def send(self, message: EmailMessage) -> str:
        """Submit `message` to the server; return 'smtp host:port (N recipients)'."""
        if not _recipients(message):
            raise MailError("the message has no recipients", retryable=False)
        try:
            with self._connect() as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
                if self.username:
                    smtp.login(self.username, self._password or "")
                refused = smtp.send_message(message)
        except (smtplib.SMTPException, OSError, ValueError) as exc:
            raise _mail_error(self.host, self.port, exc) from exc
        where = f"smtp {self.host}:{self.port} ({len(_recipients(message)) - len(refused)} recipients)"
        if refused:
            # Some recipients have it already: sending again would duplicate it for them.
            logger.warning("%s refused %s", where, _refusals(refused))
            return f"{where}; refused {_refusals(refused)}"
        return where

    def _connect(self) -> smtplib.SMTP:
        if self.ssl:
            return smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout,
                                    context=ssl.create_default_context())
        return smtplib.SMTP(self.host, self.port, timeout=self.timeout)


class FileSender:
    """Writes each message to `folder` as <stamp>-<slug>.eml, with its HTML beside it as .html."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._lock = threading.Lock()

    def send(self, message: EmailMessage) -> str:
        """Write the message (and its HTML part, if any); return the .eml path."""
        html = message.get_body(("html",))
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with self._lock:
                name = self._free_name(_slug(str(message.get("Subject", ""))))
                eml = self.folder / f"{name}.eml"
                if html is not None:
                    _write_atomically(self.folder / f"{name}.html", str(html.get_content()).encode("utf-8"))
                # The .eml last: once it exists, its .html does too.
                _write_atomically(eml, message.as_bytes(policy=SMTP))
        except OSError as exc:
            retryable = not isinstance(exc, PermissionError | NotADirectoryError | IsADirectoryError)
            raise MailError(f"cannot write to {self.folder}: {exc}", retryable=retryable) from exc
        return str(eml)

    def _free_name(self, slug: str) -> str:
        """'<stamp>-<slug>', with '-2', '-3' ... added while an .eml or .html file has that name."""
        base = f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{slug}"
        name, n = base, 1
        while (self.folder / f"{name}.eml").exists() or (self.folder / f"{name}.html").exists():
            n += 1
            name = f"{base}-{n}"
        return name


def _recipients(message: EmailMessage) -> list[str]:
    headers = [str(value) for name in ("To", "Cc", "Bcc") for value in message.get_all(name, [])]
    return [address for _, address in getaddresses(headers) if address]


def _refusals(refused: dict[str, tuple[int, bytes]]) -> str:
    return ", ".join(f"{address} ({code} {_text(reply)})" for address, (code, reply) in refused.items())


def _text(reply: bytes | str) -> str:
    """A server's reply text, on one line and short: it ends up in logs and records."""
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    return " ".join(text.split())[:200]


def _mail_error(host: str, port: int, exc: Exception) -> MailError:
    """A MailError for whatever smtplib, ssl or the socket raised (SMTPException is an OSError)."""
    where = f"smtp {host}:{port}"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        transient = bool(codes) and all(400 <= code < 500 for code in codes)
        return MailError(f"{where}: all recipients refused: {_refusals(exc.recipients)}", retryable=transient)
    if isinstance(exc, smtplib.SMTPResponseException):
        kind = "login refused" if isinstance(exc, smtplib.SMTPAuthenticationError) else "refused"
        # 4xx is a transient refusal (RFC 5321 4.2.1), even for a login (454); 5xx is final.
        reply = f"{exc.smtp_code} {_text(exc.smtp_error)}"
        return MailError(f"{where}: {kind}: {reply}", retryable=400 <= exc.smtp_code < 500)
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return MailError(f"{where}: connection lost: {exc}", retryable=True)
    if isinstance(exc, smtplib.SMTPException | ValueError):
        # No STARTTLS or AUTH offered, no common AUTH mechanism, a message smtplib cannot
        # encode: trying again sends the same thing to the same server.
        return MailError(f"{where}: cannot send: {exc}", retryable=False)
    if isinstance(exc, ssl.SSLError):
        return MailError(f"{where}: TLS failed: {exc}", retryable=False)
    if isinstance(exc, TimeoutError):
        return MailError(f"{where}: timed out: {exc}", retryable=True)
    return MailError(f"{where}: connection failed: {exc}", retryable=True)


def _slug(subject: str) -> str:
    slug = _SLUG_CHARS.sub("-", subject.lower()).strip("-")[:_SLUG_LIMIT].rstrip("-")
    return slug or "message"


def _write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file in the same folder, then rename it to `path`."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
