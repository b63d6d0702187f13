"""Block Kit limits as Slack enforces them, for the Slack stand-in (tests/slackserver.py).

Only the block and element types our messages use are known; anything else is refused, as
Slack refuses a block it cannot read (`invalid_blocks`).
"""

from __future__ import annotations

from typing import Any

_BUTTON_STYLES = {"primary", "danger"}


def problem(payload: dict[str, Any]) -> str | None:
    """Slack's error code for a message it would refuse, or None."""
    text, blocks = payload.get("text") or "", payload.get("blocks") or []
    if not text and not blocks:
        return "no_text"
    if len(str(text)) > 40_000:
        return "msg_too_long"
    if not isinstance(blocks, list) or len(blocks) > 50:
        return "invalid_blocks"
    if any(not block_ok(block) for block in blocks):
        return "invalid_blocks"
    ids = [block["block_id"] for block in blocks if "block_id" in block]
    return "invalid_blocks" if len(ids) != len(set(ids)) else None


def text_ok(obj: Any, limit: int, types: tuple[str, ...] = ("plain_text", "mrkdwn")) -> bool:
    return isinstance(obj, dict) and obj.get("type") in types and 1 <= len(str(obj.get("text", ""))) <= limit


def block_ok(block: Any) -> bool:
    if not isinstance(block, dict) or len(str(block.get("block_id", ""))) > 255:
        return False
    kind = block.get("type")
    if kind == "header":
        return text_ok(block.get("text"), 150, ("plain_text",))
    if kind == "section":
        fields = block.get("fields") or []
        fine = text_ok(block.get("text"), 3000) if "text" in block else bool(fields)
        return fine and len(fields) <= 10 and all(text_ok(f, 2000) for f in fields)
    if kind == "context":
        elements = block.get("elements") or []
        return 1 <= len(elements) <= 10 and all(text_ok(e, 3000) for e in elements)
    if kind == "actions":
        elements = block.get("elements") or []
        action_ids = [e.get("action_id") for e in elements if isinstance(e, dict)]
        unique = len(action_ids) == len(set(action_ids))
        return 1 <= len(elements) <= 25 and unique and all(_button_ok(e) for e in elements)
    return kind == "divider"


def _button_ok(element: Any) -> bool:
    if not isinstance(element, dict) or element.get("type") != "button":
        return False
    fine = (text_ok(element.get("text"), 75, ("plain_text",))
            and 1 <= len(str(element.get("action_id", ""))) <= 255
            and len(str(element.get("value", ""))) <= 2000
            and element.get("style", "primary") in _BUTTON_STYLES)
    confirm = element.get("confirm")
    return fine and (confirm is None or _confirm_ok(confirm))


def _confirm_ok(dialog: Any) -> bool:
    """A confirmation dialog: title, text, and the two button labels, each within its limit."""
    return (isinstance(dialog, dict)
            and text_ok(dialog.get("title"), 100, ("plain_text",))
            and text_ok(dialog.get("text"), 300)
            and text_ok(dialog.get("confirm"), 30, ("plain_text",))
            and text_ok(dialog.get("deny"), 30, ("plain_text",)))
