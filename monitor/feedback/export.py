"""Labels as a labelled set for `monitor eval --queries`: one line per labelled article."""

from __future__ import annotations

from monitor.types import Label
from storage.feedback_repo import FeedbackStore


def eval_queries(store: FeedbackStore) -> list[dict[str, object]]:
    """`{"id", "text", "narratives"}` per labelled article, oldest label first.

    `narratives` holds the narratives it was confirmed on; an article with false alarms only
    gets `[]`, which `monitor eval` reads as "must not alert".
    """
    confirmed: dict[int, set[str]] = {}
    for record in store.labels():
        mine = confirmed.setdefault(record.article_id, set())
        if record.label is Label.CONFIRMED:
            mine.add(record.narrative_id)
    texts = store.article_texts(list(confirmed))
    return [
        {"id": f"article-{article_id}", "text": _text(*texts[article_id]), "narratives": sorted(ids)}
        for article_id, ids in confirmed.items() if article_id in texts
    ]


def _text(title: str, body: str) -> str:
    # The title on a line of its own, as the pipeline reads it: the first passage is title and lead.
    return f"{title}\n{body}".strip()
