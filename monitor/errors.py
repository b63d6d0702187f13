"""The errors Narrative Monitor raises on purpose.

    MonitorError                 base of everything below
    ├── ConfigError              feeds.toml is missing, unreadable or invalid (lists every problem)
    ├── FetchError               a feed could not be fetched (feed id, url, HTTP status, retry-after)
    ├── ParseError               a document held no feed at all
    ├── DiscoveryError           `feeds add` found no feed at the URL or in the page
    └── StorageError             the database cannot be opened or migrated

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
    """The database cannot be reached, opened or migrated."""
