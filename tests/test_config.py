"""feeds.toml validation: defaults, every problem at once, key paths, environment overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config import load_settings, parse_duration, parse_size
from monitor.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "feeds.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert caught.value.path == str(path)
    return caught.value.problems


def test_shipped_feeds_toml_is_valid() -> None:
    settings = load_settings(REPO / "feeds.toml")
    feeds = settings.feeds()
    assert len(feeds) >= 12
    assert len({f.language for f in feeds}) >= 5
    assert all(f.url.startswith("https://") for f in feeds)


def test_empty_file_gives_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MONITOR_DATABASE_URL", raising=False)
    settings = load_settings(write(tmp_path, ""))
    assert settings.feeds() == []
    assert settings.monitor.poll_interval == 900
    assert settings.database_url == f"sqlite:///{tmp_path / 'data' / 'monitor.db'}"


def test_only_storage_and_feeds_is_valid_and_defaults_apply(tmp_path: Path) -> None:
    path = write(tmp_path, """
[storage]
url = "sqlite:///x.db"

[feeds.a]
url = "https://example.org/a.xml"

[feeds.b]
url = "https://example.org/b.xml"
interval = "1h"
tags = ["x"]
language = "EN_gb"
enabled = false
""")
    a, b = load_settings(path).feeds()
    assert (a.id, a.interval, a.enabled, a.language) == ("a", 900, True, None)
    assert (b.interval, b.enabled, b.tags, b.language) == (3600, False, ("x",), "en-gb")


def test_every_problem_is_reported_with_its_key_path(tmp_path: Path) -> None:
    path = write(tmp_path, """
[monitor]
poll_intervall = "15m"
max_concurrency = 0

[feeds.reuters]
url = "https://example.org/feed"
interval = "30s"

[feeds.broken]
name = "no url"

[feeds.ftp]
url = "ftp://example.org/feed"
interval = "soon"
""")
    found = problems(path)
    assert "monitor.poll_intervall: unknown key (check the spelling)" in found
    assert any(p.startswith("monitor.max_concurrency:") for p in found)
    assert "feeds.reuters.interval: must be at least 60 seconds" in found
    assert "feeds.broken.url: required key is missing" in found
    assert "feeds.ftp.url: must be an http:// or https:// URL" in found
    assert any(p.startswith("feeds.ftp.interval: 'soon' is not a duration") for p in found)
    assert len(found) == 6


def test_error_message_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[feeds.x]\nurl = 'https://e.org/'\ncolour = 'red'\n")
    with pytest.raises(ConfigError, match=r"feeds\.toml: feeds\.x\.colour: unknown key"):
        load_settings(path)


def test_toml_syntax_error_names_line(tmp_path: Path) -> None:
    (found,) = problems(write(tmp_path, "[feeds.x]\nurl = https://e.org/\n"))
    assert found.startswith("TOML syntax error") and "line 2" in found


def test_bad_feed_id(tmp_path: Path) -> None:
    found = problems(write(tmp_path, "[feeds.'bad id!']\nurl = 'https://e.org/'\n"))
    assert found == ["feeds.bad id!: feed id must be letters, digits, '_', '-' or '.'"]


def test_named_config_must_exist(tmp_path: Path) -> None:
    assert problems(tmp_path / "missing.toml") == ["file not found"]


def test_config_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "[feeds.x]\nurl = 'https://e.org/'\n")
    monkeypatch.setenv("MONITOR_CONFIG", str(path))
    assert [f.id for f in load_settings().feeds()] == ["x"]


def test_database_url_from_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "[storage]\nurl = 'sqlite:///file.db'\n")
    monkeypatch.setenv("MONITOR_DATABASE_URL", "postgresql://u@127.0.0.1:5432/db")
    assert load_settings(path).database_url == "postgresql+psycopg://u@127.0.0.1:5432/db"


def test_unsupported_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MONITOR_DATABASE_URL", raising=False)
    path = write(tmp_path, "[storage]\nurl = 'mysql://u@h/db'\n")
    assert problems(path) == ["storage.url: only sqlite:/// and postgresql:// URLs are supported"]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [(90, 90), ("90s", 90), ("15m", 900), ("1h30m", 5400), ("1d", 86400), ("500ms", 0.5)],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "15", "fast", "1w", "1h 30x", True])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(("text", "size"), [(2048, 2048), ("512KB", 524288), ("10MB", 10485760)])
def test_sizes(text: object, size: int) -> None:
    assert parse_size(text) == size
