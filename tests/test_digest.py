"""The daily digest end to end: stored matches -> email -> a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

import email
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import Engine

from alerts.digest_build import period_of
from alerts.mail import SmtpSender
from monitor.config import DigestSection, SmtpSection
from monitor.ingest.dedup import content_hash, guid_hash
from monitor.service.digest_job import DigestService
from monitor.types import Article, Feed, FeedStatus, Match, Narrative, Tier
from storage.digest_repo import DigestStore
from storage.narratives_repo import MatchStore
from storage.repo import Repository

DAY = date(2026, 11, 24)
ZONE = "Europe/Riga"  # UTC+2 in November: the local day starts at 22:00 UTC the day before
HOSTILE = '<script>alert("x")</script> Biolabs again\r\nBcc: evil@example.org'


class Inbox:
    """An aiosmtpd handler that keeps what it receives, or refuses it when told to."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.refuse = False

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse:
            return "451 try again later"
        message = email.message_from_bytes(envelope.content, policy=default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 OK"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


def at(hour: int, day: date = DAY) -> datetime:
    """A time on `day` in Riga, as UTC."""
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC) - timedelta(hours=2)


def seed(engine: Engine) -> None:
    repo, store = Repository(engine), MatchStore(engine)
    repo.sync_feeds([Feed("wire", "https://wire.example/f", name="Wire"),
                     Feed("daily", "https://daily.example/f", name="Daily")])
    store.upsert_narratives([Narrative("biolabs", "US biolabs in Ukraine"),
                             Narrative("nato", "NATO encircles Russia")])
    before, after = DAY - timedelta(days=1), DAY + timedelta(days=1)
    items = [("wire", "a1", HOSTILE, at(9), "biolabs", 0.81, Tier.ALERT),
             ("daily", "a2", "Labs story retold", at(23), "biolabs", 0.55, Tier.WATCH),
             ("wire", "a3", "Yesterday's labs story", at(12, before), "biolabs", 0.7, Tier.ALERT),
             ("wire", "a4", "Tomorrow's NATO story", at(1, after), "nato", 0.9, Tier.ALERT)]
    for feed_id, guid, title, published, narrative, score, tier in items:
        article = Article(feed_id, guid, guid_hash(guid), f"https://{feed_id}.example/{guid}", title, "",
                          None, "en", published, published, content_hash(title, guid))
        state = repo.feed_state(feed_id)
        assert state is not None
        (stored,) = repo.record_success(replace(state, status=FeedStatus.OK), [article])
        match = Match(stored.id, narrative, score, tier, title, "Evidence.")
        store.save_passages_and_matches("m", {}, [match])


def service(engine: Engine, port: int, **changes: Any) -> DigestService:
    section = DigestSection(timezone=ZONE, recipients=("desk@example.org",),
                            smtp=SmtpSection(host="127.0.0.1", port=port, starttls=False), **changes)
    sender = SmtpSender("127.0.0.1", port, starttls=False, timeout=5)
    return DigestService(DigestStore(engine), sender, section)


def test_digest_arrives_with_the_days_matches(engine: Engine, smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    seed(engine)
    outcome = service(engine, port).send(DAY)
    assert outcome.status == "sent"
    (message,) = inbox.messages
    assert message["Subject"] == "Narrative Monitor digest for 2026-11-24"
    assert message["To"] == "desk@example.org" and message["Bcc"] is None
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    plain, markup = text.get_content(), html.get_content()
    assert "Labs story retold" in plain and "Yesterday's labs story" not in plain
    assert "Tomorrow's NATO story" not in plain
    assert "&lt;script&gt;" in markup and "<script>" not in markup
    images = [p for p in message.walk() if p.get_content_type() == "image/png"]
    assert len(images) == 1 and images[0]["Content-ID"].strip("<>") in markup


def test_a_day_is_sent_once(engine: Engine, smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    seed(engine)
    digest = service(engine, port)
    assert digest.send(DAY).status == "sent"
    assert digest.send(DAY).status == "already sent"
    assert len(inbox.messages) == 1
    assert digest.send(DAY, force=True).status == "sent"
    assert len(inbox.messages) == 2


def test_a_failed_send_is_not_marked_sent_and_is_retried(engine: Engine, smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    seed(engine)
    digest = service(engine, port)
    inbox.refuse = True
    failed = digest.send(DAY)
    assert failed.status == "failed" and "451" in (failed.error or "")
    assert digest.store.status("2026-11-24") == "failed"
    inbox.refuse = False
    assert digest.send(DAY).status == "sent"
    assert len(inbox.messages) == 1


def test_empty_day_says_nothing_matched_or_is_skipped(engine: Engine, smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    seed(engine)
    quiet = DAY - timedelta(days=30)
    assert service(engine, port).send(quiet).status == "sent"
    body = inbox.messages[0].get_body(("plain",))
    assert body is not None and "othing matched" in body.get_content()
    skipping = service(engine, port, send_empty=False)
    assert skipping.send(quiet - timedelta(days=1)).status == "skipped"
    assert len(inbox.messages) == 1


def test_period_follows_the_timezone() -> None:
    period = period_of(DAY, ZONE)
    assert period.start == datetime(2026, 11, 23, 22, tzinfo=UTC)
    assert period.end == datetime(2026, 11, 24, 22, tzinfo=UTC)
    assert [d for d, _s, _e in period.days][-1] == "2026-11-24" and len(period.days) == 7


def test_cli_writes_digests_to_files_without_smtp(tmp_path: Path) -> None:
    config = tmp_path / "feeds.toml"
    config.write_text('[matching]\nmodel = "hashing"\n[digest]\ntimezone = "Europe/Riga"\n', encoding="utf-8")
    env = {**os.environ, "MONITOR_DATABASE_URL": f"sqlite:///{tmp_path / 'm.db'}"}

    def monitor(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "monitor.cli.main", "--config", str(config), *args],
                              env=env, capture_output=True, text=True, timeout=120)

    sent = monitor("digest", "send", "--date", "2026-11-24")
    assert sent.returncode == 0, sent.stderr
    assert "Digest for 2026-11-24: sent" in sent.stdout
    written = sorted(p.suffix for p in (tmp_path / "data" / "digests").iterdir())
    assert written == [".eml", ".html"]
    again = monitor("digest", "send", "--date", "2026-11-24")
    assert "already sent" in again.stdout
    preview = monitor("digest", "preview", "--date", "2026-11-24", "--out", str(tmp_path / "p.html"))
    assert preview.returncode == 0 and "<html" in (tmp_path / "p.html").read_text().lower()
    bad = monitor("digest", "send", "--date", "24.11.2026")
    assert bad.returncode != 0 and "not a date" in bad.stderr
