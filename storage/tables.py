"""SQLAlchemy models. They never leave `storage/`: the repository converts them to types."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names so migrations read the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given to the database")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class FeedRow(Base):
    __tablename__ = "feeds"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    config_url: Mapped[str] = mapped_column(Text)  # as written in feeds.toml
    url: Mapped[str] = mapped_column(Text)  # as polled now (after permanent redirects)
    name: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="new")
    etag: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[str | None] = mapped_column(Text)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    consecutive_errors: Mapped[int] = mapped_column(Integer, default=0)
    next_poll_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Items the feed ever delivered (its article_sources rows), kept here so `feeds list` does
    # not count a year of keys on every call.
    article_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class ArticleRow(Base):
    __tablename__ = "articles"
    __table_args__ = (
        UniqueConstraint("feed_id", "guid_hash"),
        UniqueConstraint("url"),
        Index(None, "content_hash"),
        Index(None, "published_at"),
        Index(None, "fetched_at"),  # pruning by age, the embedding window
        # Copies of an article (replies, pruning). Partial: only copies are in it, so it stays
        # small and the planner never walks it for "duplicate_of IS NULL" (all originals).
        Index(None, "duplicate_of", sqlite_where=text("duplicate_of IS NOT NULL"),
              postgresql_where=text("duplicate_of IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    feed_id: Mapped[str] = mapped_column(ForeignKey("feeds.id"))
    guid: Mapped[str] = mapped_column(Text)
    guid_hash: Mapped[str] = mapped_column(String(64))
    url: Mapped[str | None] = mapped_column(Text)  # canonical; NULL when the entry had no link
    title: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    author: Mapped[str | None] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(35))
    published_at: Mapped[datetime] = mapped_column(UTCDateTime)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    content_hash: Mapped[str] = mapped_column(String(64))
    # Same text published under another URL: kept (another outlet carried it) but linked.
    duplicate_of: Mapped[int | None] = mapped_column(ForeignKey("articles.id"))


class ArticleSourceRow(Base):
    """Every (feed, guid) that led to an article, so a syndicated copy is recognised on re-poll."""

    __tablename__ = "article_sources"

    feed_id: Mapped[str] = mapped_column(ForeignKey("feeds.id"), primary_key=True)
    guid_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    # NULL once the article was pruned: the key still says the feed delivered this item.
    article_id: Mapped[int | None] = mapped_column(ForeignKey("articles.id"), index=True)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)


class NarrativeRow(Base):
    __tablename__ = "narratives"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    summary: Mapped[str] = mapped_column(Text)
    disproof: Mapped[str] = mapped_column(Text)
    examples: Mapped[list[str]] = mapped_column(JSON)
    keywords: Mapped[list[str]] = mapped_column(JSON)
    tags: Mapped[list[str]] = mapped_column(JSON)
    countries: Mapped[list[str]] = mapped_column(JSON)
    url: Mapped[str | None] = mapped_column(Text)
    threshold: Mapped[float | None] = mapped_column(Float)
    enabled: Mapped[bool] = mapped_column(Boolean)
    # sha256 over the embedded texts (title, examples, summary): when it changes, re-embed.
    text_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class NarrativeVectorRow(Base):
    """One embedded text of a narrative (row 0: the title, then the examples ...) for one model."""

    __tablename__ = "narrative_vectors"
    # Leads with model_id for lookups by model, and hands rows over in load order without a sort.
    __table_args__ = (Index(None, "model_id", "narrative_id", "row"),)

    narrative_id: Mapped[str] = mapped_column(
        ForeignKey("narratives.id", ondelete="CASCADE"), primary_key=True
    )
    model_id: Mapped[str] = mapped_column(String(300), primary_key=True)
    row: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    text: Mapped[str] = mapped_column(Text)
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # float32, little-endian


class ArticlePassageRow(Base):
    """One embedded passage of an article for one model; derived data, dropped with the article."""

    __tablename__ = "article_passages"
    __table_args__ = (Index(None, "model_id", "article_id"),)

    article_id: Mapped[int] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    model_id: Mapped[str] = mapped_column(String(300), primary_key=True)
    idx: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    text: Mapped[str] = mapped_column(Text)
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # float32, little-endian


class MatchRow(Base):
    __tablename__ = "matches"
    __table_args__ = (
        UniqueConstraint("article_id", "narrative_id"),
        Index(None, "created_at"),
        Index(None, "narrative_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id"))
    narrative_id: Mapped[str] = mapped_column(ForeignKey("narratives.id"))
    score: Mapped[float] = mapped_column(Float)
    tier: Mapped[str] = mapped_column(String(10))  # "alert" or "watch"
    passage: Mapped[str] = mapped_column(Text)
    evidence: Mapped[str] = mapped_column(Text)
    model_id: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AlertRow(Base):
    """The outbox: written with the match, delivered afterwards, delivery recorded."""

    __tablename__ = "alerts"
    __table_args__ = (
        UniqueConstraint("key"),
        Index(None, "status", "next_attempt_at"),
        Index(None, "narrative_id", "channel", "created_at"),
        Index(None, "article_id"),
        Index(None, "parent_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(400))
    kind: Mapped[str] = mapped_column(String(10))
    channel: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(10))
    article_id: Mapped[int | None] = mapped_column(ForeignKey("articles.id"))
    narrative_id: Mapped[str | None] = mapped_column(ForeignKey("narratives.id"))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id"))
    feed_id: Mapped[str | None] = mapped_column(String(200))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    ts: Mapped[str | None] = mapped_column(String(40))  # Slack's id of the posted message
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    story_id: Mapped[int | None] = mapped_column(Integer)  # kind "story": the story posted


class DigestRow(Base):
    """One row per digest period: sent once, failures recorded for the retry."""

    __tablename__ = "digests"

    period: Mapped[str] = mapped_column(String(10), primary_key=True)  # "YYYY-MM-DD", local day
    status: Mapped[str] = mapped_column(String(10))  # "sent", "skipped" or "failed"
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    destination: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RowCountRow(Base):
    """Rows of `name` with value `key` (articles: one key, ""), summed over `slot`.

    Kept by the triggers of migration 0009 on every insert, delete and change of the counted
    column, whatever writes; nothing in Python writes here. Concurrent PostgreSQL writers add
    to different slots so they do not queue on one row. On SQLite a migration that rebuilds a
    counted table (batch mode) drops its triggers with it: it must create them again.
    """

    __tablename__ = "row_counts"

    name: Mapped[str] = mapped_column(String(20), primary_key=True)
    key: Mapped[str] = mapped_column(String(20), primary_key=True)
    slot: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    n: Mapped[int] = mapped_column(BigInteger)


class FeedbackLabelRow(Base):
    """An analyst's label on an alert. The current one has no `ended_at`; the others are history."""

    __tablename__ = "feedback_labels"
    __table_args__ = (
        # At most one current label per alert: a double click racing itself inserts once.
        Index("uq_feedback_labels_current", "alert_id", unique=True,
              sqlite_where=text("ended_at IS NULL"), postgresql_where=text("ended_at IS NULL")),
        Index(None, "alert_id"),
        Index(None, "narrative_id", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id"))
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id"))
    narrative_id: Mapped[str] = mapped_column(ForeignKey("narratives.id"))
    label: Mapped[str] = mapped_column(String(20))  # "confirmed" or "false_alarm"
    user: Mapped[str] = mapped_column(String(200))  # Slack user id, or --user of the CLI
    note: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(10))  # "slack" or "cli"
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_by: Mapped[str | None] = mapped_column(String(200))
    ended_how: Mapped[str | None] = mapped_column(String(10))  # "replaced" or "undone"


class NarrativeMuteRow(Base):
    """A narrative kept out of Slack until `until`; the digest still shows it."""

    __tablename__ = "narrative_mutes"

    narrative_id: Mapped[str] = mapped_column(
        ForeignKey("narratives.id", ondelete="CASCADE"), primary_key=True
    )
    until: Mapped[datetime] = mapped_column(UTCDateTime)
    muted_by: Mapped[str] = mapped_column(String(200))
    muted_at: Mapped[datetime] = mapped_column(UTCDateTime)


class LearnedExampleRow(Base):
    """A confirmed evidence sentence embedded as one more example of its narrative, until removed."""

    __tablename__ = "learned_examples"
    __table_args__ = (Index(None, "narrative_id", "removed_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    narrative_id: Mapped[str] = mapped_column(ForeignKey("narratives.id", ondelete="CASCADE"))
    text: Mapped[str] = mapped_column(Text)
    label_id: Mapped[int | None] = mapped_column(ForeignKey("feedback_labels.id"))
    alert_id: Mapped[int | None] = mapped_column(Integer)
    added_by: Mapped[str] = mapped_column(String(200))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CalibrationRow(Base):
    """A value `monitor calibrate --apply` stored over the configuration (the global alert threshold)."""

    __tablename__ = "calibration"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[float] = mapped_column(Float)
    labels: Mapped[int] = mapped_column(Integer)  # how many labels it was chosen from
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class StoryRow(Base):
    """A story: articles from several outlets telling the same thing, with a stable id."""

    __tablename__ = "stories"
    __table_args__ = (Index(None, "status", "last_seen"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    status: Mapped[str] = mapped_column(String(10))  # "active", "merged" or "ended"
    label: Mapped[str] = mapped_column(Text)  # the representative headline
    representative_id: Mapped[int | None] = mapped_column(Integer)
    terms: Mapped[list[str]] = mapped_column(JSON)
    outlets: Mapped[list[str]] = mapped_column(JSON)  # names of the independent sources' outlets
    languages: Mapped[list[str]] = mapped_column(JSON)
    tags: Mapped[list[str]] = mapped_column(JSON)
    size: Mapped[int] = mapped_column(Integer)
    sources: Mapped[int] = mapped_column(Integer)
    growth: Mapped[int] = mapped_column(Integer)
    narrative_id: Mapped[str | None] = mapped_column(String(200))
    narrative_score: Mapped[float | None] = mapped_column(Float)
    known_alert: Mapped[bool] = mapped_column(Boolean)
    emerging: Mapped[bool] = mapped_column(Boolean)
    emerging_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    merged_into: Mapped[int | None] = mapped_column(Integer)
    merged_from: Mapped[list[int]] = mapped_column(JSON)
    split_from: Mapped[int | None] = mapped_column(Integer)
    promoted_to: Mapped[str | None] = mapped_column(String(200))
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class StoryArticleRow(Base):
    """An article the story update has seen: its story (if any) and the article standing for its copies."""

    __tablename__ = "story_articles"

    article_id: Mapped[int] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    story_id: Mapped[int | None] = mapped_column(ForeignKey("stories.id"), index=True)
    unit_id: Mapped[int] = mapped_column(Integer)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime)


class StoryHistoryRow(Base):
    """A story's size at the end of each hour it was updated in."""

    __tablename__ = "story_history"

    story_id: Mapped[int] = mapped_column(ForeignKey("stories.id"), primary_key=True, autoincrement=False)
    hour: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    size: Mapped[int] = mapped_column(Integer)
    sources: Mapped[int] = mapped_column(Integer)


class StoryLockRow(Base):
    """One row, locked by each story update so that two never interleave (SQLite: one writer anyway)."""

    __tablename__ = "story_lock"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
