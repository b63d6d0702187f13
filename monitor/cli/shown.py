"""Untrusted text as the CLI prints it: plain, without escape sequences or control characters.

Titles, evidence, feed errors and narrative texts come from strangers. Printed as a rich
`str` they would be read as markup (`[link=...]`), emoji codes and highlighted; printed raw,
an escape sequence in them would drive the terminal (open a hyperlink, clear the screen). A
`Text` is shown as it is, so these go through `plain()`; JSON goes through `json_text()`.
"""

from __future__ import annotations

import json
from typing import Any

from rich.text import Text

from alerts.text import json_escaped, printable


def plain(text: object, *, newlines: bool = True) -> Text:
    """`text` (None: empty) as a rich Text with no markup, without control or bidi characters."""
    return Text(printable("" if text is None else str(text), newlines=newlines))


def json_text(data: Any, *, indent: int | None = None) -> str:
    """`data` as JSON, non-ASCII text readable, the characters a terminal acts on escaped."""
    return json_escaped(json.dumps(data, ensure_ascii=False, indent=indent))
