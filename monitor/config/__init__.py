"""feeds.toml -> validated settings.

Every problem is reported at once, each with its key path and the file, and unknown keys
are errors: a typo must not silently fall back to a default.

    values.py    the value syntaxes: durations ("1h30m") and sizes ("10MB", via pydantic's ByteSize)
    sections.py  one pydantic model per table, with every key's type, default and bounds
    settings.py  reading the file, one message per problem, the environment overrides
"""

from __future__ import annotations

from monitor.config.sections import (
    DEFAULT_ALERT_THRESHOLD,
    DEFAULT_WATCH_THRESHOLD,
    MIN_INTERVAL,
    AlertsSection,
    ConfigFile,
    DigestSection,
    EngineSection,
    FeedSection,
    MatchingSection,
    MonitorSection,
    RouteSection,
    SlackSection,
    SmtpSection,
    StorageSection,
    StoriesSection,
)
from monitor.config.settings import (
    CONFIG_ENV,
    DATABASE_ENV,
    DEFAULT_CONFIG,
    Settings,
    config_path,
    load_settings,
    parse_config,
)
from monitor.config.values import Duration, Size, parse_duration, parse_size

__all__ = [
    "CONFIG_ENV",
    "DATABASE_ENV",
    "DEFAULT_ALERT_THRESHOLD",
    "DEFAULT_CONFIG",
    "DEFAULT_WATCH_THRESHOLD",
    "MIN_INTERVAL",
    "AlertsSection",
    "ConfigFile",
    "DigestSection",
    "Duration",
    "EngineSection",
    "FeedSection",
    "MatchingSection",
    "MonitorSection",
    "RouteSection",
    "Settings",
    "Size",
    "SlackSection",
    "SmtpSection",
    "StorageSection",
    "StoriesSection",
    "config_path",
    "load_settings",
    "parse_config",
    "parse_duration",
    "parse_size",
]
