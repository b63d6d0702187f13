"""A story turned into a narrative: analysts document what the monitor found on its own."""

from __future__ import annotations

from pathlib import Path

import yaml

from monitor.types import Narrative, Story

EXAMPLES = 8  # member headlines kept as example phrasings
PROMOTED_TAG = "promoted-story"


def story_narrative(story: Story) -> Narrative:
    """Title from the representative headline, examples from the other members, terms as keywords."""
    examples = tuple(t for t in story.titles if t.strip() and t != story.label)[:EXAMPLES]
    outlets = ", ".join(story.outlets[:5]) + (" ..." if len(story.outlets) > 5 else "")
    summary = (f"Promoted from story {story.id}: {story.size} article(s) from {len(story.outlets)} "
               f"outlet(s) ({outlets}), first seen {story.first_seen:%Y-%m-%d %H:%M} UTC. "
               "Edit the title into the claim being made and add a summary and disproof.")
    return Narrative(id=f"story-{story.id}", title=story.label.strip() or f"Story {story.id}",
                     summary=summary, examples=examples, keywords=story.terms, tags=(PROMOTED_TAG,),
                     url=story.urls[0] if story.urls else None)


def write_narrative_file(narrative: Narrative, path: Path) -> None:
    """The narrative as a YAML file `monitor narratives import` reads back after editing."""
    item = {"id": narrative.id, "title": narrative.title, "summary": narrative.summary,
            "examples": list(narrative.examples), "keywords": list(narrative.keywords),
            "tags": list(narrative.tags), "url": narrative.url, "disproof": narrative.disproof}
    header = "# Edit, then: monitor narratives import " + path.name + "\n"
    path.write_text(header + yaml.safe_dump([item], allow_unicode=True, sort_keys=False), encoding="utf-8")
