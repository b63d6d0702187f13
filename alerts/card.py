"""The alert card: one Slack message per article, with buttons analysts answer it with.

The best-scoring narrative is shown in full (alerts.message.alert_message), the article's
other narratives are listed under it, and every narrative has its own row of buttons:
`confirm`, `false_alarm` and `mute` (action_ids scripts depend on), each with the alert id
as its `value`. Once labelled, a narrative's buttons give way to who labelled it and how,
with an Undo; a mute also offers another duration.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from alerts.message import (
    MAX_BLOCKS,
    SECTION_LIMIT,
    SlackMessage,
    alert_message,
    clip,
    date_token,
    inline,
)
from monitor.types import Action, CardEntry, CardLabel

Block = dict[str, Any]

DEFAULT_MUTE = 24 * 3600.0  # seconds; the `mute` button's duration
# The other durations offered once a narrative is muted (the issue asks for a simple fixed choice).
# Each its own action_id (Slack wants them unique in a block): mute_for_1h, mute_for_7d.
OTHER_MUTES = ((3600.0, "1 hour", "1h"), (7 * 86400.0, "7 days", "7d"))
LISTED_OTHERS = 10  # other narratives with their own rows; 6 + 10 x 4 blocks stay under 50
_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,30}$")
_LABELS = {"confirmed": ":white_check_mark: Confirmed", "false_alarm": ":x: False alarm",
           "muted": ":no_bell: Narrative muted"}


def alert_card(entries: Sequence[CardEntry]) -> SlackMessage:
    """One message for one article's alerts on one channel: best narrative first, each labellable."""
    best, *others = sorted(entries, key=lambda e: (-e.content.score, e.alert_id))
    head = alert_message(best.content)
    blocks: list[Block] = [*head.blocks, *controls(best)]
    text = head.text
    for entry in others[:LISTED_OTHERS]:
        c = entry.content
        line = f"*Also matches:* {inline(c.narrative_title, 500)} (score {c.score:.2f})"
        if c.evidence.strip():
            line += "\n> " + inline(c.evidence, SECTION_LIMIT - len(line) - 3)
        blocks += [{"type": "divider"}, _section(line), *controls(entry)]
        text += f"\nAlso matches: {inline(c.narrative_title, 500)} (score {c.score:.2f})"
    if len(others) > LISTED_OTHERS:
        more = len(others) - LISTED_OTHERS
        blocks.append(_context(f"+{more} more narrative(s); label them with `monitor feedback add`"))
    return SlackMessage(text=text, blocks=tuple(blocks[:MAX_BLOCKS]))


def controls(entry: CardEntry) -> list[Block]:
    """The buttons of one narrative, or its label with an Undo."""
    block_id = f"alert-{entry.alert_id}"
    value = str(entry.alert_id)
    label = entry.label
    if label is None:
        title = inline(entry.content.narrative_title, 120)
        return [{"type": "actions", "block_id": block_id, "elements": [
            _button("Confirm", Action.CONFIRM, value, "primary"),
            _button("False alarm", Action.FALSE_ALARM, value, "danger"),
            _button("Mute narrative", Action.MUTE, value, confirm=_mute_dialog(title)),
        ]}]
    buttons = [_button("Undo", Action.UNDO, value)]
    if label.kind == "muted":
        buttons += [_button(f"Mute {name} instead", f"{Action.MUTE_FOR}_{short}", f"{value}:{seconds:g}")
                    for seconds, name, short in OTHER_MUTES]
    return [_context(label_line(label)),
            {"type": "actions", "block_id": block_id, "elements": buttons}]


def label_line(label: CardLabel) -> str:
    """"✅ Confirmed by @ana at 12:30", "Narrative muted by @ana until ...", as mrkdwn."""
    what = _LABELS.get(label.kind) or inline(label.kind, 40)
    who = f"<@{label.user}>" if _SLACK_USER.match(label.user) else inline(label.user or "someone", 100)
    line = f"{what} by {who}, {date_token(label.at)}"
    if label.until is not None:
        line += f"; alerts resume {date_token(label.until)}"
    return line


def mute_until(at: datetime, seconds: float = DEFAULT_MUTE) -> datetime:
    """When a mute chosen at `at` for `seconds` ends."""
    return datetime.fromtimestamp(at.timestamp() + seconds, tz=at.tzinfo or UTC)


def _mute_dialog(title: str) -> Block:
    hours = f"{DEFAULT_MUTE / 3600:g} hours"
    text = (f"No Slack alerts about *{title}* for {hours} (it stays in the digest). "
            "Another duration can be chosen afterwards.")
    return {
        "title": {"type": "plain_text", "text": "Mute this narrative?"},
        "text": {"type": "mrkdwn", "text": clip(text, 300)},
        "confirm": {"type": "plain_text", "text": f"Mute {hours}"},
        "deny": {"type": "plain_text", "text": "Cancel"},
    }


def _button(text: str, action: str, value: str, style: str | None = None,
            confirm: Block | None = None) -> Block:
    button: Block = {"type": "button", "action_id": str(action), "value": value,
                     "text": {"type": "plain_text", "text": text, "emoji": True}}
    if style:
        button["style"] = style
    if confirm:
        button["confirm"] = confirm
    return button


def _section(text: str) -> Block:
    text = clip(text, SECTION_LIMIT)
    return {"type": "section", "text": {"type": "mrkdwn", "text": text, "verbatim": True}}


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(text, SECTION_LIMIT)}]}


__all__ = ["DEFAULT_MUTE", "alert_card", "controls", "label_line", "mute_until"]
