"""Result tables as Markdown (rendered by Jupyter and the book, readable as text)."""

from __future__ import annotations

import dataclasses
from typing import Sequence


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    if any(len(r) != len(headers) for r in rows):
        raise ValueError(f"rows: every row needs {len(headers)} cells (one per header)")
    lines = ["| " + " | ".join(map(str, headers)) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return "\n".join(lines)


def settings_table(settings, names: Sequence[str] | None = None) -> str:
    """A chapter's settings (a dataclass, e.g. ``experiments.<chapter>.Settings``) as a
    two-column Markdown table, the fields ``names`` in that order (default: every field)."""
    if not dataclasses.is_dataclass(settings) or isinstance(settings, type):
        raise ValueError(f"settings: expected a dataclass instance, got {type(settings).__name__}")
    fields = [f.name for f in dataclasses.fields(settings)]
    names = fields if names is None else list(names)
    unknown = [n for n in names if n not in fields]
    if unknown:
        raise ValueError(f"names: {unknown} are not fields of {type(settings).__name__}; valid: {', '.join(fields)}")

    def show(value) -> str:
        if isinstance(value, (tuple, list)):
            return ", ".join(show(v) for v in value)
        return f"{value:g}" if isinstance(value, float) else str(value)

    return markdown_table(["setting", "value"], [[n, show(getattr(settings, n))] for n in names])


def seed_adaptation_table(curves: Sequence, steps: Sequence[int]) -> str:
    """Method × (K, steps) table of grid MSE over training seeds: the mean of the seeds' means ± its
    Student-t 95% half-width across seeds, then in brackets the pooled test-task half-width, and the
    diverged (seed, task) pairs, counted.

    ``curves``: adaptation curves over seeds (``Curve.n_seeds`` >= 1), labelled with ``k_shot``."""
    ks = sorted({c.labels["k_shot"] for c in curves})
    methods = list(dict.fromkeys(c.name for c in curves))
    by_key = {(c.name, c.labels["k_shot"]): c for c in curves}
    headers = ["method"] + [f"K={k}, {s} step{'s' if s != 1 else ''}" for k in ks for s in steps]

    def cell(c, step) -> str:
        if c is None:
            return "—"
        s = c.seed_summary(step)
        text = f"{s.mean:.3g} ± {s.ci95:.2g} (tasks ± {s.tasks.ci95:.2g})"
        return text + (f", {s.n_diverged} diverged" if s.n_diverged else "")

    rows = [[m] + [cell(by_key.get((m, k)), s) for k in ks for s in steps] for m in methods]
    return markdown_table(headers, rows)


def adaptation_table(curves: Sequence, steps: Sequence[int]) -> str:
    """Method x (K, steps) table of grid MSE, mean ± 95% CI, with diverged tasks counted.

    ``curves``: adaptation curves (:func:`backprop2lib.meta.evaluate_adaptation`), labelled with ``k_shot``."""
    ks = sorted({c.labels["k_shot"] for c in curves})
    methods = list(dict.fromkeys(c.name for c in curves))
    by_key = {(c.name, c.labels["k_shot"]): c for c in curves}
    headers = ["method"] + [f"K={k}, {s} step{'s' if s != 1 else ''}" for k in ks for s in steps]
    rows = []
    for m in methods:
        row = [m]
        for k in ks:
            for s in steps:
                c = by_key.get((m, k))
                row.append("—" if c is None else str(c.summary(s)))
        rows.append(row)
    return markdown_table(headers, rows)
