"""How `monitor calibrate` prints its proposals."""

from __future__ import annotations

from collections.abc import Callable

from rich.table import Table
from rich.text import Text

from monitor.cli.shown import plain
from monitor.cli.support import out
from monitor.feedback.calibration import GLOBAL, Calibration, Figures, Proposal


def show_calibration(result: Calibration, configured: float, stored: float | None, labels: int) -> None:
    """The proposals as a table, then the whole channel's precision and recall before and after."""
    table = Table("threshold of", "labels (confirmed / false)", "threshold", "precision", "recall",
                  title="proposed alert thresholds (figures on the labels)", box=None)
    rows = ([result.global_] if result.global_ else []) + list(result.narratives)
    for proposal in rows:
        table.add_row(*_row(proposal))
    out.print(table)
    if result.global_ is None:
        out.print("The global threshold is unchanged: every label belongs to a narrative with its own.")
    elif not result.global_.enough:
        count = result.global_.confirmed + result.global_.false_alarms
        out.print(plain(f"The global threshold is unchanged: {count} label(s) fall under it, "
                        "fewer than --min-labels."))
    source = (f"calibrated {stored:.3f} over [matching] alert_threshold {configured:.2f}"
              if stored is not None else f"[matching] alert_threshold {configured:.2f}")
    out.print(plain(f"Global threshold now: {source}."))
    before, after = result.total_before, result.total_after
    out.print(plain(f"All {labels} labels: precision {_share(before.precision)} -> "
                    f"{_share(after.precision)}, recall {_share(before.recall)} -> {_share(after.recall)} "
                    f"(alerts kept {before.kept} -> {after.kept})."))
    out.print("Labels cover only articles that alerted: recall is the share of confirmed alerts kept, "
              "not of every repeat of a narrative.")


def _row(p: Proposal) -> list[str | Text]:
    scope = "global (narratives without their own)" if p.scope == GLOBAL else plain(p.scope)
    return [scope, f"{p.confirmed + p.false_alarms} ({p.confirmed} / {p.false_alarms})",
            _arrow(p, lambda f: f"{f.threshold:.3f}"), _arrow(p, lambda f: _share(f.precision)),
            _arrow(p, lambda f: _share(f.recall))]


def _arrow(p: Proposal, shown: Callable[[Figures], str]) -> str:
    return f"{shown(p.before)} -> {shown(p.after)}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
