"""Alerts as Slack messages: Block Kit blocks plus a plain-text fallback.

Everything that comes from a feed (titles, outlet names, evidence, URLs) is untrusted. It
reaches Slack markup only through `escape()` or `safe_url()`, without control or bidi
characters (`alerts.text.printable`), and each piece is cut to its own budget before the
pieces are put together. So building a message never fails, never goes over a Slack limit,
never pings anyone, never reorders text and never breaks a link in half.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from alerts.links import http_url
from alerts.text import ELLIPSIS, one_line
from alerts.text import clip as clip_text
from monitor.types import AlertContent, Story

__all__ = ["AlertContent", "SlackMessage", "alert_message", "date_token", "escape", "flood_summary",
           "inline", "story_message", "syndication_reply", "test_message"]

Block = dict[str, Any]

# Slack's limits (Block Kit reference, chat.postMessage).
HEADER_LIMIT = 150
SECTION_LIMIT = 3000
CONTEXT_ELEMENTS = 10
MAX_BLOCKS = 50
TEXT_LIMIT = 40_000
LISTED_ITEMS = 20  # articles or outlets listed one per line before "+N more"
LISTED_NAMES = 10  # outlet names listed inline before "+N more"
WORD_JOINER = "\u2060"  # zero-width, no line break: '@\u2060here' looks like '@here'

_BROADCASTS = re.compile(r"@(?=channel|here|everyone)", re.IGNORECASE)
_CUT_ENTITY = re.compile(r"&[a-z]{0,3}$")  # what cutting '&amp;' or '&lt;' short leaves
_TIER_LABELS = {"alert": ":rotating_light: alert", "watch": ":eyes: watch"}


@dataclass(frozen=True)
class SlackMessage:
    """A message as chat.postMessage and incoming webhooks take it."""

    text: str  # the fallback: notifications, screen readers, clients without Block Kit
    blocks: tuple[Block, ...]

    def lines(self) -> list[str]:
        """The text of each block, in order (context elements joined on one line)."""
        lines: list[str] = []
        for block in self.blocks:
            if "text" in block:
                lines.append(str(block["text"]["text"]))
            elif block.get("type") == "context":
                lines.append("  ·  ".join(str(element["text"]) for element in block["elements"]))
        return lines


def escape(text: str) -> str:
    """Make untrusted text inert wherever Slack parses text: mrkdwn, plain_text, the fallback.

    Slack reads `&`, `<` and `>` as control characters: `<!channel>`, `<@U123>` and
    `<https://evil|click here>` are live markup (a broadcast, a mention, a disguised link).
    Written as `&amp;`, `&lt;` and `&gt;` they show as the characters themselves. A plain
    `@channel`, `@here` or `@everyone` is not markup, but Slack still turns it into a
    broadcast when a message is posted with `link_names` or parsed by a client, so a
    zero-width WORD JOINER goes after the `@`: the text reads the same and pings nobody.
    """
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _BROADCASTS.sub("@" + WORD_JOINER, text)


def clip(text: str, limit: int) -> str:
    """`text` in at most `limit` characters: cut, if need be, before an entity, and ended with '…'."""
    return clip_text(text, limit, cut_tail=_CUT_ENTITY)


def safe_url(url: str | None) -> str | None:
    """`url` fit to sit inside `<url|label>`: http(s) only, `|<>` and spaces percent-encoded."""
    url = http_url(url)
    # Slack decodes the three entities everywhere, link targets included.
    return url.replace("&", "&amp;") if url else None


def alert_message(a: AlertContent) -> SlackMessage:
    """The Slack message for one alert."""
    title = a.article_title.strip() or "(untitled article)"
    blocks = [
        _header(a.narrative_title),
        _section(f"*{_link(a.article_url, title, SECTION_LIMIT - 2)}*"),
        _context(_facts(a)),
    ]
    if a.evidence.strip():
        blocks.append(_section("> " + inline(a.evidence, SECTION_LIMIT - 2)))
    narrative = _narrative(a.narrative_summary, a.narrative_url)
    if narrative:
        blocks.append(_section(narrative))
    if a.also_published_by:
        blocks.append(_context(["Also published by: " + _names(a.also_published_by)]))
    return _message(_fallback(a), blocks)


def syndication_reply(outlets: Sequence[str], urls: Sequence[str | None]) -> SlackMessage:
    """A threaded reply listing the other outlets that published the same article."""
    lines = [
        "• " + _link(urls[i] if i < len(urls) else None, outlet or "(unnamed outlet)", 400)
        for i, outlet in enumerate(outlets[:LISTED_ITEMS])
    ]
    blocks = _listing("*Also published by*", lines, len(outlets))
    return _message("Also published by: " + _names(outlets), blocks)


def flood_summary(
    narrative_title: str, items: Sequence[tuple[str, str | None, str]], window: str
) -> SlackMessage:
    """One message for the alerts the flood guard held back: (article title, url, outlet)."""
    count = len(items)
    what = f"{count} article{'s' if count != 1 else ''}"
    heading = f"*{inline(narrative_title, 1000)}* matched {what} in {inline(window, 100)}."
    lines = [
        f"• {_link(url, title.strip() or '(untitled article)', 600)} — {inline(outlet, 200)}"
        for title, url, outlet in items[:LISTED_ITEMS]
    ]
    blocks = [_header(f"Flood guard: {what} held back"), *_listing(heading, lines, count)]
    text = f"Flood guard held back {what} matching {inline(narrative_title, 1000)}"
    return _message(f"{text} in {inline(window, 100)}.", blocks)


def story_message(story: Story) -> SlackMessage:
    """A story that crossed the emerging bar: what it says, who tells it, how fast it grows."""
    outlets = len(story.outlets)
    figures = (f"*{story.size} article{'s' if story.size != 1 else ''}* from *{outlets} outlet"
               f"{'s' if outlets != 1 else ''}*, +{story.growth} new "
               f"source{'s' if story.growth != 1 else ''} recently; no known narrative alerts on it.")
    facts = [f"Outlets: {_names(story.outlets)}"]
    if story.terms:
        facts.append("Terms: " + inline(", ".join(story.terms), 300))
    if story.languages:
        facts.append("Languages: " + inline(", ".join(story.languages), 100))
    if story.narrative_id:
        score = f" ({story.narrative_score:.2f})" if story.narrative_score is not None else ""
        facts.append(f"Variant of narrative {inline(story.narrative_id, 200)}{score}")
    lines = [f"• {_link(url, title.strip() or '(untitled article)', 600)}"
             for title, url in story.articles[:LISTED_ITEMS]]
    blocks = [_header(f"Emerging story: {story.label}"), _section(figures), _context(facts),
              *_listing("*Articles*", lines, len(story.articles)),
              _context([f"Story {story.id}: `monitor stories show {story.id}`; "
                        f"`monitor narratives promote {story.id}` documents it"])]
    text = f"Emerging story ({story.size} articles, {outlets} outlets): {inline(story.label, 1000)}"
    return _message(text, blocks)


def test_message() -> SlackMessage:
    """A harmless message to check that Slack delivery is configured."""
    text = "Narrative Monitor test message: Slack alerts are configured and reach this channel."
    return _message(text, [_header("Narrative Monitor test message"), _section(text)])


def inline(text: str, limit: int) -> str:
    """Untrusted text, on one line, without control characters, escaped and cut to `limit` characters."""
    return clip(escape(one_line(text)), limit)


def _link(url: str | None, label: str, limit: int) -> str:
    """Untrusted `label` linked to `url` if it is safe and leaves room for the label."""
    target = safe_url(url)
    room = limit - len(target) - 3 if target else 0
    if target is None or room < 20:
        return inline(label, limit)
    return f"<{target}|{inline(label, room)}>"


def _names(names: Sequence[str]) -> str:
    listed = ", ".join(inline(name, 100) for name in names[:LISTED_NAMES])
    extra = len(names) - LISTED_NAMES
    return listed + (f" (+{extra} more)" if extra > 0 else "")


def date_token(when: datetime) -> str:
    """Slack's date token: shown in the reader's time zone, with a UTC fallback."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    fallback = when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(when.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def _facts(a: AlertContent) -> list[str]:
    facts = [f"*{inline(a.outlet, 200)}*"]
    if a.language:
        facts.append(f"lang: {inline(a.language, 20)}")
    tier = _TIER_LABELS.get(a.tier) or inline(a.tier, 20)
    return [*facts, date_token(a.published), f"score {a.score:.2f}", tier]


def _narrative(summary: str, url: str | None) -> str:
    target = safe_url(url)
    source = f"\n<{target}|Where it is documented>" if target else ""
    if not summary.strip() and not source:
        return ""
    return f"*Narrative:* {inline(summary, SECTION_LIMIT - 20 - len(source))}{source}"


def _fallback(a: AlertContent) -> str:
    text = (
        f"[{inline(a.tier, 20)} {a.score:.2f}] {inline(a.narrative_title, 1000)}: "
        f"“{inline(a.article_title, 1000)}” ({inline(a.outlet, 200)})"
    )
    if a.evidence.strip():
        text += "\n> " + inline(a.evidence, SECTION_LIMIT)
    if a.also_published_by:
        text += "\nAlso published by: " + _names(a.also_published_by)
    return text


def _listing(heading: str, lines: list[str], total: int) -> list[Block]:
    """`heading` and `lines` packed into as few sections as fit, then '+N more' if some were left out."""
    sections: list[str] = [heading]
    for line in lines:
        if len(sections[-1]) + 1 + len(line) <= SECTION_LIMIT:
            sections[-1] += "\n" + line
        else:
            sections.append(line)
    blocks = [_section(text) for text in sections]
    if total > len(lines):
        blocks.append(_context([f"+{total - len(lines)} more"]))
    return blocks


def _header(text: str) -> Block:
    plain = inline(text, HEADER_LIMIT) or ELLIPSIS
    return {"type": "header", "text": {"type": "plain_text", "text": plain, "emoji": True}}


def _mrkdwn(text: str) -> Block:
    # verbatim: Slack must not auto-link bare URLs or channel names in untrusted text;
    # the markup we write ourselves (<url|label>, <!date^...>) is still honoured.
    return {"type": "mrkdwn", "text": clip(text, SECTION_LIMIT) or ELLIPSIS, "verbatim": True}


def _section(text: str) -> Block:
    return {"type": "section", "text": _mrkdwn(text)}


def _context(parts: Iterable[str]) -> Block:
    return {"type": "context", "elements": [_mrkdwn(part) for part in parts][:CONTEXT_ELEMENTS]}


def _message(text: str, blocks: list[Block]) -> SlackMessage:
    return SlackMessage(text=clip(text, TEXT_LIMIT), blocks=tuple(blocks[:MAX_BLOCKS]))
