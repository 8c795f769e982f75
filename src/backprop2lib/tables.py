"""Result tables as Markdown (rendered by Jupyter and the book, readable as text)."""

from __future__ import annotations

from typing import Sequence


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    if any(len(r) != len(headers) for r in rows):
        raise ValueError(f"rows: every row needs {len(headers)} cells (one per header)")
    lines = ["| " + " | ".join(map(str, headers)) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return "\n".join(lines)


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
