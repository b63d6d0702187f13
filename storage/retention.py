"""Pruning old rows in small batches, keeping every row a `PrunePlan` says is still needed.

Each batch is a transaction of its own, so on SQLite the write lock is held for one batch at
a time and polls go on in between. What is old and what is still needed is decided by the
caller (monitor/service/retention.py); this module knows only which rows refer to which.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime

from sqlalchemy import Connection, Engine, Select, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from monitor.types import AlertStatus, Label, PruneCounts, PrunePlan
from storage.tables import (
    AlertRow,
    ArticlePassageRow,
    ArticleRow,
    ArticleSourceRow,
    FeedbackLabelRow,
    MatchRow,
)

log = logging.getLogger("storage.retention")

# Alerts that will never be sent again once older than the retention: pending and sending ones
# are still to go out; a held one waits for a flood summary due within the flood window (hours),
# so one held longer than `retention` (14 days at least) lost its summary to a failure.
SETTLED = (AlertStatus.SENT.value, AlertStatus.FAILED.value, AlertStatus.MERGED.value,
           AlertStatus.SUPPRESSED.value, AlertStatus.HELD.value)
Step = Callable[[Connection, list[int]], PruneCounts]


def prune(engine: Engine, plan: PrunePlan) -> PruneCounts:
    """Delete what the plan lets go, oldest first, `plan.batch` rows per transaction."""
    done = PruneCounts()
    if plan.alerts_before is not None:
        done = _add(done, _in_batches(engine, _old_alerts(plan.alerts_before), plan.batch, _drop_alerts))
    if plan.texts_before is not None:
        old = _old_articles(plan.texts_before, plan.keep_published_since)
        done = _add(done, _in_batches(engine, old, plan.batch, _drop_articles))
    if plan.vectors_before is not None:
        old = _embedded_articles(plan.vectors_before, plan.backfill_since, plan.keep_alerted_since)
        done = _add(done, _in_batches(engine, old, plan.batch, _drop_passages))
    return done


def _in_batches(engine: Engine, ids: Select[int], batch: int, step: Step) -> PruneCounts:
    done = PruneCounts()
    while True:
        try:
            with engine.begin() as connection:
                chunk = list(connection.scalars(ids.limit(batch)))
                if chunk:
                    done = _add(done, step(connection, chunk))
        except IntegrityError as exc:
            # A writer referred to one of these rows meanwhile (PostgreSQL); the next run retries.
            log.warning("prune batch rolled back: a row was referred to meanwhile",
                        extra={"error": str(exc.orig)})
            return done
        if len(chunk) < batch:
            return done


def _old_alerts(before: datetime) -> Select[int]:
    """Settled alerts created before `before` with no reply that stays; replies (newer) first.

    Alerts analysts labelled stay with their articles: the labels are what `monitor calibrate`
    and `monitor feedback export` learn from, and they name the alert."""
    reply = aliased(AlertRow)
    staying_reply = select(reply.id).where(
        reply.parent_id == AlertRow.id, (reply.created_at >= before) | reply.status.not_in(SETTLED)
    ).exists()
    labelled = select(FeedbackLabelRow.id).where(FeedbackLabelRow.alert_id == AlertRow.id).exists()
    return (select(AlertRow.id)
            .where(AlertRow.created_at < before, AlertRow.status.in_(SETTLED), ~staying_reply, ~labelled)
            .order_by(AlertRow.id.desc()))


def _drop_alerts(connection: Connection, ids: list[int]) -> PruneCounts:
    return PruneCounts(alerts=connection.execute(delete(AlertRow).where(AlertRow.id.in_(ids))).rowcount)


def _old_articles(before: datetime, keep_published_since: datetime | None) -> Select[int]:
    """Articles fetched before `before` that nothing still needs."""
    alerted = select(AlertRow.id).where(AlertRow.article_id == ArticleRow.id).exists()
    # The digest marks a narrative NEW when nothing matched it before: its first match stays.
    first_matches = select(func.min(MatchRow.id)).group_by(MatchRow.narrative_id)
    firsts = select(MatchRow.article_id).where(MatchRow.id.in_(first_matches))
    query = select(ArticleRow.id).where(
        ArticleRow.fetched_at < before, ~alerted, ArticleRow.id.not_in(firsts))
    if keep_published_since is not None:
        query = query.where(ArticleRow.published_at < keep_published_since)
    return query.order_by(ArticleRow.id)


def _drop_articles(connection: Connection, ids: list[int]) -> PruneCounts:
    # Copies of these articles stay (their own feed delivered them) as articles of their own.
    connection.execute(update(ArticleRow).where(ArticleRow.duplicate_of.in_(ids)).values(duplicate_of=None))
    # The (feed, guid) keys stay: an old item still in its feed must not come back as new.
    connection.execute(
        update(ArticleSourceRow).where(ArticleSourceRow.article_id.in_(ids)).values(article_id=None))
    matches = connection.execute(delete(MatchRow).where(MatchRow.article_id.in_(ids))).rowcount
    passages = _drop_passages(connection, ids).passages
    articles = connection.execute(delete(ArticleRow).where(ArticleRow.id.in_(ids))).rowcount
    return PruneCounts(articles=articles, matches=matches, passages=passages)


def _embedded_articles(
    before: datetime, backfill_since: datetime, keep_alerted_since: datetime
) -> Select[int]:
    """Articles fetched before `before` that still hold vectors nothing needs any more."""
    has_vectors = select(ArticlePassageRow.idx).where(ArticlePassageRow.article_id == ArticleRow.id).exists()
    alerted = select(AlertRow.id).where(
        AlertRow.article_id == ArticleRow.id, AlertRow.created_at >= keep_alerted_since).exists()
    # A false alarm holds back articles with a near-identical lead at any time: its lead stays.
    false_alarm = select(FeedbackLabelRow.id).where(
        FeedbackLabelRow.article_id == ArticleRow.id, FeedbackLabelRow.ended_at.is_(None),
        FeedbackLabelRow.label == Label.FALSE_ALARM.value).exists()
    # Older articles hold none (pruned before): start at the oldest that does, not at the first row.
    oldest = select(func.min(ArticlePassageRow.article_id)).scalar_subquery()
    return select(ArticleRow.id).where(
        ArticleRow.id >= oldest, ArticleRow.fetched_at < before, ArticleRow.published_at < backfill_since,
        has_vectors, ~alerted, ~false_alarm).order_by(ArticleRow.id)


def _drop_passages(connection: Connection, ids: Sequence[int]) -> PruneCounts:
    statement = delete(ArticlePassageRow).where(ArticlePassageRow.article_id.in_(ids))
    return PruneCounts(passages=connection.execute(statement).rowcount)


def _add(total: PruneCounts, more: PruneCounts) -> PruneCounts:
    return replace(total, articles=total.articles + more.articles, matches=total.matches + more.matches,
                   passages=total.passages + more.passages, alerts=total.alerts + more.alerts)
