"""The digest's chart: matches per day for the busiest narratives, drawn as a PNG.

A bare matplotlib Figure with its own Agg canvas: no pyplot, so no global state, no GUI, and
the same bytes for the same digest (tests compare them).
"""

from __future__ import annotations

import io
import struct
from collections.abc import Mapping, Sequence
from datetime import date

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from alerts.text import clip
from monitor.types import Digest

CHART_SERIES = 6  # narratives drawn, busiest first
LEGEND_CHARS = 30
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")
_MARKERS = ("o", "s", "^", "D", "v", "P")


def chart_png(digest: Digest) -> bytes:
    """Matches per day over `digest.days` for the busiest narratives, as a 600x260 PNG."""
    series = _busiest(digest.daily, len(digest.days))
    if not series:
        figure = _figure(600, 100)
        figure.text(0.5, 0.5, "no matches", ha="center", va="center", fontsize=12, color="#667085")
        return _png(figure)
    figure = _figure(600, 260)
    axes = figure.add_subplot()
    for i, (title, counts) in enumerate(series):
        axes.plot(counts, color=_COLOURS[i], marker=_MARKERS[i], markersize=3, linewidth=1.5,
                  label=clip(title, LEGEND_CHARS))
    axes.set_xticks(range(len(digest.days)), [day_label(day) for day in digest.days])
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylim(bottom=0)
    axes.set_ylabel("matches", fontsize=8, color="#475467")
    axes.tick_params(labelsize=8, colors="#475467")
    axes.grid(axis="y", color="#eaecf0", linewidth=0.8)
    axes.spines[["top", "right"]].set_visible(False)
    legend = figure.legend(loc="outside right upper", fontsize=7, frameon=False)
    for text in legend.get_texts():
        text.set_parse_math(False)  # a '$' in a title must not start mathtext
    return _png(figure)


def _busiest(daily: Mapping[str, Sequence[int]], days: int) -> list[tuple[str, list[int]]]:
    """Up to CHART_SERIES (title, counts) with any matches, most matches first."""
    rows = [(title, [*counts[:days], *[0] * (days - len(counts))]) for title, counts in daily.items()]
    rows = [row for row in rows if sum(row[1]) > 0]
    rows.sort(key=lambda row: (-sum(row[1]), row[0]))
    return rows[:CHART_SERIES] if days else []


def _figure(width: int, height: int) -> Figure:
    # A bare Figure with its own Agg canvas: no pyplot, so no global state and no GUI.
    figure = Figure(figsize=(width / 100, height / 100), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    return buffer.getvalue()


def png_size(png: bytes) -> tuple[int, int]:
    """Width and height from the PNG's IHDR chunk."""
    width, height = struct.unpack(">II", png[16:24])
    return int(width), int(height)


def day_label(day: str) -> str:
    """'2026-11-23' -> 'Mon 23' (English whatever the locale)."""
    try:
        parsed = date.fromisoformat(day)
    except ValueError:
        return clip(day, 10)
    return f"{DAYS[parsed.weekday()][:3]} {parsed.day}"
