"""The daily digest email: plain text, and HTML with a chart of the week inline.

Everything that comes from a feed (titles, outlets, evidence, URLs, feed errors) is
untrusted. It is cleaned of control and bidi characters and cut to a budget here, reaches
the HTML only through Jinja's autoescaping, becomes a link only when it is an http(s) URL,
and never reaches a header: the headers carry only the subject, sender and recipients from
the configuration.
"""

from __future__ import annotations

import base64
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from email.message import EmailMessage
from email.policy import default
from email.utils import format_datetime, make_msgid, parseaddr
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, StrictUndefined

from alerts.chart import DAYS, chart_png, day_label, png_size
from alerts.links import http_url
from alerts.text import clip, one_line
from monitor.types import Digest, DigestArticle, DigestNarrative, DigestStory, FailingFeed

__all__ = ["inline_images", "render_digest"]

TEXT_WIDTH = 80
# Okabe-Ito: told apart with colour-blindness; each series also has its own marker.
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_DOMAIN = re.compile(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*")


def render_digest(
    digest: Digest, *, subject: str, sender: str, recipients: Sequence[str]
) -> EmailMessage:
    """The digest as multipart/alternative: plain text, and HTML with the chart attached inline.

    `subject`, `sender` and `recipients` come from the configuration; no recipients means no
    To header (a digest written to files). An address that does not parse raises ValueError.
    """
    domain = _domain(sender)
    png = chart_png(digest)
    cid = make_msgid("chart", domain=domain)
    context = _context(digest, cid[1:-1], png)
    message = EmailMessage(policy=default)
    message["Subject"] = _clean(subject, 250) or "Narrative Monitor digest"
    _set_addresses(message, "From", [sender])
    if recipients:
        _set_addresses(message, "To", recipients)
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid("digest", domain=domain)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies
    message.set_content(_templates.get_template("digest.txt.j2").render(context))
    message.add_alternative(_templates.get_template("digest.html.j2").render(context), subtype="html")
    html = message.get_body(("html",))
    assert html is not None
    html.add_related(png, "image", "png", cid=cid, disposition="inline", filename="matches.png")
    return message


def inline_images(message: EmailMessage) -> str:
    """The HTML part with each inline image as a data: URI, for a file opened in a browser.

    A browser has no message to resolve `cid:` references in, so the preview file of the
    digest would show a broken image; the email itself keeps the Content-ID reference.
    """
    html_part = message.get_body(("html",))
    assert html_part is not None
    html = str(html_part.get_content())
    for part in message.walk():
        cid = part.get("Content-ID")
        payload = part.get_payload(decode=True)
        if cid and isinstance(payload, bytes):
            data = base64.b64encode(payload).decode("ascii")
            html = html.replace(f"cid:{cid.strip('<>')}", f"data:{part.get_content_type()};base64,{data}")
    return html


# Untrusted text and dates ---------------------------------------------------------------


def _clean(text: str, limit: int) -> str:
    """Untrusted text on one line, without control or bidi characters, cut to `limit` characters."""
    return clip(one_line(text), limit)


def _long_date(day: date) -> str:
    return f"{DAYS[day.weekday()]} {day.day} {_MONTHS[day.month - 1]} {day.year}"


def _local(when: datetime, zone: tzinfo) -> datetime:
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(zone)


def _moment(when: datetime) -> str:
    return f"{_long_date(when.date())} {when:%H:%M}"


def _period(start: datetime, end: datetime) -> str:
    """'Tuesday 24 November 2026' for whole local days, else both ends with their times."""
    if start.time() == end.time() == time(0):
        last = (end - timedelta(days=1)).date()
        first = _long_date(start.date())
        return first if last <= start.date() else f"{first} – {_long_date(last)}"
    return f"{_moment(start)} – {_moment(end)}"


# What the templates show ----------------------------------------------------------------


@dataclass(frozen=True)
class _Link:
    text: str
    url: str | None  # only ever an http(s) URL


@dataclass(frozen=True)
class _Change:
    arrow: str
    amount: str
    against: str
    colour: str


@dataclass(frozen=True)
class _ArticleView:
    link: _Link
    outlet: str
    time: str
    score: str
    tier: str
    alert: bool
    evidence: str


@dataclass(frozen=True)
class _NarrativeView:
    link: _Link
    articles: int
    outlets: int
    alerts: int
    new: bool
    changes: tuple[_Change, _Change]
    top: tuple[_ArticleView, ...]
    labels: str  # analysts' labels this week, "" when none


@dataclass(frozen=True)
class _StoryView:
    link: _Link
    story_id: int
    size: int
    outlets: int
    outlet_names: str
    growth: int
    languages: str
    narrative: str
    still_emerging: bool


@dataclass(frozen=True)
class _FeedView:
    name: str
    feed_id: str
    link: _Link
    errors: int
    last_error: str
    last_success: str


def _change(now: float, before: float, against: str, digits: int) -> _Change:
    diff = round(now - before, digits)
    label = f"{against} ({before:.{digits}f})"
    if diff > 0:
        return _Change("▲", f"+{diff:.{digits}f}", label, "#b42318")
    if diff < 0:
        return _Change("▼", f"-{-diff:.{digits}f}", label, "#027a48")
    return _Change("=", "±0", label, "#667085")


def _clock(when: datetime, one_day: bool) -> str:
    """HH:MM, with the day in front when the period spans more than one day."""
    return f"{when:%H:%M}" if one_day else f"{DAYS[when.weekday()][:3]} {when.day} {when:%H:%M}"


def _article(a: DigestArticle, zone: tzinfo, one_day: bool) -> _ArticleView:
    alert = a.tier.lower() == "alert"
    return _ArticleView(
        link=_Link(_clean(a.title, 300) or "(untitled article)", http_url(a.url)),
        outlet=_clean(a.outlet, 100) or "(unnamed outlet)",
        time=_clock(_local(a.published, zone), one_day),
        score=f"{a.score:.2f}",
        tier="ALERT" if alert else (_clean(a.tier, 20).lower() or "watch"),
        alert=alert,
        evidence=_clean(a.evidence, 600),
    )


def _narrative(n: DigestNarrative, zone: tzinfo, one_day: bool) -> _NarrativeView:
    return _NarrativeView(
        link=_Link(_clean(n.title, 300) or n.narrative_id, http_url(n.url)),
        articles=n.articles,
        outlets=n.outlets,
        alerts=n.alerts,
        new=n.first_seen,
        changes=(_change(n.articles, n.previous_day, "vs previous day", 0),
                 _change(n.articles, n.week_average, "vs 7-day average", 1)),
        top=tuple(_article(a, zone, one_day) for a in n.top),
        labels=_labels(n.confirmed_week, n.false_alarms_week),
    )


def _labels(confirmed: int, false_alarms: int) -> str:
    if not confirmed and not false_alarms:
        return ""
    return f"Labelled this week: {confirmed} confirmed, {_plural(false_alarms, 'false alarm')}"


def _precision(digest: Digest) -> str:
    """The channel's measured precision: how many of the week's labelled alerts were right."""
    precision = digest.precision_week
    if precision is None:
        return "No alert was labelled in the last 7 days: the channel's precision is not measured."
    labelled = digest.confirmed_week + digest.false_alarms_week
    return (f"Alert precision measured by analysts over the last 7 days: {precision:.0%} "
            f"({digest.confirmed_week} of {_plural(labelled, 'labelled alert')} confirmed).")


def _story(s: DigestStory) -> _StoryView:
    names = [_clean(name, 60) for name in s.outlets[:8]]
    more = f" and {len(s.outlets) - 8} more" if len(s.outlets) > 8 else ""
    return _StoryView(
        link=_Link(_clean(s.label, 300) or f"Story {s.story_id}", http_url(s.url)), story_id=s.story_id,
        size=s.size, outlets=len(s.outlets), outlet_names=", ".join(names) + more, growth=s.growth,
        languages=", ".join(_clean(lang, 10) for lang in s.languages),
        narrative=_clean(s.narrative_id or "", 200), still_emerging=s.still_emerging,
    )


def _feed(f: FailingFeed, zone: tzinfo) -> _FeedView:
    return _FeedView(
        name=_clean(f.name, 100) or _clean(f.feed_id, 100),
        feed_id=_clean(f.feed_id, 100),
        link=_Link(_clean(f.url, 300), http_url(f.url)),
        errors=f.consecutive_errors,
        last_error=_clean(f.last_error, 300) or "(no message)",
        last_success=_moment(_local(f.last_success, zone)) if f.last_success else "never",
    )


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _context(digest: Digest, cid: str, png: bytes) -> dict[str, Any]:
    zone_name = digest.timezone or "UTC"
    zone: tzinfo = ZoneInfo(zone_name)
    start, end = _local(digest.start, zone), _local(digest.end, zone)
    one_day = start.date() == (end - timedelta(microseconds=1)).date()  # a 23- or 25-hour day too
    narratives = sorted(digest.narratives, key=lambda n: (-n.articles, n.title))
    views = [_narrative(n, zone, one_day) for n in narratives]
    width, height = png_size(png)
    span = f", {day_label(digest.days[0])} to {day_label(digest.days[-1])}" if digest.days else ""
    articles, alerts = sum(n.articles for n in narratives), sum(n.alerts for n in narratives)
    summary = f"{_plural(len(views), 'narrative')}, {_plural(articles, 'article')}, {alerts} alert-tier"
    return {
        "period": _period(start, end),
        "zone": zone_name,
        "summary": summary,
        "precision": _precision(digest),
        "nothing": f"Nothing matched between {_moment(start)} and {_moment(end)} ({zone_name}).",
        "narratives": views,
        "first_seen": [view.link for view in views if view.new],
        "stories": [_story(s) for s in digest.stories],
        "feeds": [_feed(f, zone) for f in digest.failing_feeds],
        "chart": {"cid": cid, "width": width, "height": height, "alt": f"Chart: matches per day{span}"},
    }


# The email ------------------------------------------------------------------------------


def _wrap(text: str, indent: str = "", first: str | None = None) -> str:
    """`text` filled to TEXT_WIDTH columns; `first` prefixes the first line instead of `indent`."""
    lead = indent if first is None else first
    return textwrap.fill(text, TEXT_WIDTH, initial_indent=lead, subsequent_indent=indent) or lead


# Autoescaping by name, as select_autoescape() would not see 'html' in 'digest.html.j2'.
_templates = Environment(
    loader=PackageLoader("alerts", "templates"), autoescape=lambda name: str(name).endswith(".html.j2"),
    undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
)
_templates.filters["wrap"] = _wrap
_templates.globals["plural"] = _plural


def _domain(sender: str) -> str:
    """The domain of the sender's address, for Message-ID and Content-ID."""
    domain = parseaddr(sender)[1].rpartition("@")[2]
    return domain if _DOMAIN.fullmatch(domain) else "localhost"


def _set_addresses(message: EmailMessage, name: str, values: Sequence[str]) -> None:
    """Set an address header from configured addresses, refusing anything that is not one."""
    if any(_CONTROL.search(value) for value in values):
        raise ValueError(f"{name}: control character in address")
    message[name] = ", ".join(values)
    header = message[name]
    addresses = header.addresses
    if header.defects or len(addresses) != len(values) or any("@" not in a.addr_spec for a in addresses):
        del message[name]
        raise ValueError(f"{name}: not an email address: {', '.join(values)!r}")
