"""The errors Narrative Monitor raises on purpose.

    MonitorError                 base of everything below
    ├── ConfigError              feeds.toml is missing, unreadable or invalid (lists every problem);
    │                            also a digest to mail with no recipients
    ├── FetchError               a feed could not be fetched (feed id, url, HTTP status, retry-after)
    ├── ParseError               a document held no feed at all
    ├── DiscoveryError           `feeds add` found no feed at the URL or in the page
    ├── StorageError             the database cannot be opened or migrated, or a write failed (operation)
    │   └── NotFoundError        a row the operation needs is not stored (also a KeyError)
    ├── ModelError               an embedding model cannot be loaded (never downloaded at run time)
    ├── LabelError               a label request that cannot be: a malformed alert id, an unknown action
    └── DataFileError            a file given on the command line cannot be read (path, line)
        ├── NarrativeFileError   `narratives import`: the file as a whole (bad rows are reported, not raised)
        └── EvalDataError        `monitor eval`: a labelled set is missing or malformed

The outward seams raise their own, since `alerts/` imports nothing of `monitor` but its types:
alerts.slack.SlackError (channel, Slack error code, retryable, retry_after) and
alerts.mail.MailError (reason, retryable); the deliverer and the digest service record them.

A failing feed never stops the others: the pipeline records the error on the feed's state
and backs off; only errors that stop the whole program reach the CLI.
"""

from __future__ import annotations

from pathlib import Path


class MonitorError(Exception):
    """Base class of the errors raised on purpose."""


class ConfigError(MonitorError):
    """The configuration is invalid; `problems` holds one line per problem."""

    def __init__(self, path: Path | str, problems: list[str]) -> None:
        self.path = str(path)
        self.problems = problems
        lines = "\n".join(f"  {self.path}: {problem}" for problem in problems)
        super().__init__(f"invalid configuration ({len(problems)} problem(s)):\n{lines}")


class FetchError(MonitorError):
    """A feed could not be fetched. `status` is None when no HTTP answer came back."""

    def __init__(
        self,
        url: str,
        reason: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        feed_id: str | None = None,
    ) -> None:
        self.url = url
        self.reason = reason
        self.status = status
        self.retry_after = retry_after
        self.feed_id = feed_id
        super().__init__(f"{url}: {reason}")


class ParseError(MonitorError):
    """The document is not a feed (no feed element, no entries)."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"{url}: {reason}")


class DiscoveryError(MonitorError):
    """No feed was found at a URL given to `monitor feeds add`."""


class StorageError(MonitorError):
    """The database cannot be reached, opened or migrated, or `operation` could not be done."""

    def __init__(self, reason: str, *, operation: str | None = None) -> None:
        self.reason = reason
        self.operation = operation
        super().__init__(f"{operation}: {reason}" if operation else reason)


class NotFoundError(StorageError, KeyError):
    """`operation` needs a `kind` row with id `key` that is not stored (a KeyError too)."""

    def __init__(self, kind: str, key: object, *, operation: str, hint: str = "") -> None:
        self.kind = kind
        self.key = key
        reason = f"{kind} {key!r} is not stored" + (f"; {hint}" if hint else "")
        super().__init__(reason, operation=operation)

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ModelError(MonitorError):
    """An embedding model cannot be loaded; the message says how to make it available offline."""

    def __init__(self, model: str, reason: str) -> None:
        self.model = model
        self.reason = reason
        super().__init__(
            f"cannot load embedding model {model!r}: {reason}. To use it offline, save it once on a "
            f"machine with network access (SentenceTransformer({model!r}).save('/some/folder')), copy "
            "that folder here and configure its path as the model; or copy a Hugging Face cache "
            "(HF_HOME) that holds it and run with HF_HUB_OFFLINE=1"
        )


class LabelError(MonitorError):
    """A label (or mute) request is malformed: `field` holds what was wrong, `value` what was given."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"{field} {value!r}: {reason}")


class DataFileError(MonitorError):
    """An input file cannot be read; `line` is set when one line is to blame."""

    def __init__(self, path: Path | str, reason: str, line: int | None = None) -> None:
        self.path = str(path)
        self.reason = reason
        self.line = line
        super().__init__(f"{self.path}:{line}: {reason}" if line else f"{self.path}: {reason}")


class NarrativeFileError(DataFileError):
    """A narrative file cannot be read at all (unknown format, not UTF-8, broken JSON/YAML)."""


class EvalDataError(DataFileError):
    """An evaluation set is missing a file or has a malformed line."""
