"""The daily digest: one email per period, sent once, retried until it goes out."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

from alerts.digest import inline_images, render_digest
from alerts.digest_build import build_digest, period_of
from alerts.mail import FileSender, MailError, MailSender, SmtpSender
from monitor.config import DigestSection, Settings
from monitor.errors import ConfigError
from monitor.types import Digest, DigestStatus, utc_now
from storage.digest_repo import DigestStore

log = logging.getLogger("monitor.service.digest_job")

PASSWORD_ENV = "MONITOR_SMTP_PASSWORD"
ALREADY_SENT = "already sent"
_DONE = (DigestStatus.SENT, DigestStatus.SKIPPED)  # a period in either state is not retried



def make_mail_sender(settings: Settings) -> MailSender:
    """SMTP when [digest.smtp] is set; otherwise .eml and .html files in the outbox folder."""
    smtp = settings.file.digest.smtp
    if smtp is None:
        return FileSender(settings.data_dir / settings.file.digest.outbox_dir)
    return SmtpSender(smtp.host, smtp.port, starttls=smtp.starttls, ssl=smtp.ssl,
                      username=smtp.username, password=os.environ.get(PASSWORD_ENV), timeout=smtp.timeout)


@dataclass(frozen=True)
class DigestOutcome:
    period: str
    status: str  # a DigestStatus, or ALREADY_SENT
    destination: str | None = None
    error: str | None = None


class DigestService:
    """Builds, renders and sends digests, recording each period's outcome."""

    def __init__(
        self,
        store: DigestStore,
        sender: MailSender,
        section: DigestSection,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.store = store
        self.sender = sender
        self.section = section
        self._clock = clock
        # The cron job and the retry job may fire together; one send at a time per process.
        self._lock = threading.Lock()

    def yesterday(self) -> date:
        """The last complete day in the digest's timezone."""
        return self._clock().astimezone(ZoneInfo(self.section.timezone)).date() - timedelta(days=1)

    def preview(self, day: date, out: Path) -> Path:
        """Write the digest's HTML to `out` (its chart inline) without sending or recording anything."""
        out.write_text(inline_images(self._render(day)), encoding="utf-8")
        return out

    def send(self, day: date, *, force: bool = False) -> DigestOutcome:
        """Send the digest of `day` unless it went out already (or `force`)."""
        with self._lock:
            return self._send(day, force)

    def _send(self, day: date, force: bool) -> DigestOutcome:
        period = period_of(day, self.section.timezone)
        if not force and self.store.status(period.key) in _DONE:
            return DigestOutcome(period.key, ALREADY_SENT)
        digest = build_digest(self.store, period, self.section.top_articles)
        if not digest.narratives and not digest.stories and not self.section.send_empty:
            self.store.record(period.key, DigestStatus.SKIPPED)
            return DigestOutcome(period.key, DigestStatus.SKIPPED)
        message = self._render(day, digest)
        try:
            destination = self.sender.send(message)
        except MailError as exc:
            self.store.record(period.key, DigestStatus.FAILED, error=exc.reason)
            log.error("digest not sent; will retry", extra={"period": period.key, "error": exc.reason})
            return DigestOutcome(period.key, DigestStatus.FAILED, error=exc.reason)
        self.store.record(period.key, DigestStatus.SENT, destination=destination)
        log.info("digest sent", extra={"period": period.key, "to": destination,
                                       "narratives": len(digest.narratives)})
        return DigestOutcome(period.key, DigestStatus.SENT, destination)

    def catch_up(self) -> DigestOutcome | None:
        """Send yesterday's digest if its time has passed and it has not gone out (retries too)."""
        zone = ZoneInfo(self.section.timezone)
        now = self._clock().astimezone(zone)
        due = datetime.combine(now.date(), time.fromisoformat(self.section.time), zone)
        if now < due:
            return None
        key = self.yesterday().isoformat()
        if self.store.status(key) in _DONE:
            return None
        return self.send(self.yesterday())

    def _render(self, day: date, digest: Digest | None = None) -> EmailMessage:
        period = period_of(day, self.section.timezone)
        built = digest if digest is not None else build_digest(self.store, period, self.section.top_articles)
        if not self.section.recipients and not isinstance(self.sender, FileSender):
            raise ConfigError("[digest]", ["recipients is empty: nobody to send the digest to"])
        return render_digest(built, subject=self.section.subject.format(date=period.key),
                             sender=self.section.sender, recipients=list(self.section.recipients))
