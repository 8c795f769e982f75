"""The book's reproducibility appendix, generated from what the repository records.

* ``reproducibility.md``: per chapter, the profile, device, wall time, library version and
  date of the committed outputs (the runner's stamp in each notebook's metadata), and whether
  the notebook is fresh (its stamp matches the current code cells and library sources); then
  every trained model the ``paper`` chapters load from the store (:mod:`backprop2lib.store`):
  where, when and how long it trained, and whether its stamp still matches the code.
* ``benchmarks.md``: the result tables that ``benchmarks/`` scripts wrote to
  ``benchmarks/results/*.md``.
* ``findings.md``: the book's scoreboard, every chapter's claims with their verdicts as the
  committed claim cells (``# NBVAL_CHECK_OUTPUT``) printed them, the training seeds they were
  read over, and the run that produced them.

It is also a Sphinx extension (listed in ``_config.yml``): every book build writes both
pages into ``book/appendix/`` before Sphinx reads its sources, so the appendix can never be
older than the build. The pages are build products (git-ignored), not sources.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

from .run.notebooks import is_stale, read_stamp
from .tables import markdown_table

APPENDIX_DIR = Path("book") / "appendix"


def chapter_records(root: str | Path) -> list[dict]:
    """One record per chapter notebook (``notebooks/NN_*.ipynb``) from its committed stamp."""
    root = Path(root)
    records = []
    for path in sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        try:
            nb = nbformat.read(str(path), as_version=4)
        except Exception as error:  # a corrupt notebook is reported, not hidden
            records.append({"notebook": path.name, "error": f"unreadable: {error}"})
            continue
        stamp = read_stamp(nb) or {}
        records.append({
            "notebook": path.name,
            "title": next((c.source.splitlines()[0].lstrip("# ").strip() for c in nb.cells
                           if c.cell_type == "markdown" and c.source.startswith("# ")), path.stem),
            "profile": stamp.get("profile"),
            "device": stamp.get("device"),
            "wall_time_s": stamp.get("wall_time_s"),
            "library_version": stamp.get("library_version"),
            "executed": stamp.get("executed"),
            "fresh": bool(stamp) and not is_stale(path),
        })
    return records


def stored_models_table(root: str | Path, profile: str = "paper") -> str:
    """One row per trained model of ``profile`` in the store at ``root/trained``: status, where, when, how long."""
    import json

    from .store import model_paths, registered_models, status

    store = Path(root) / "trained"
    rows = []
    for spec in registered_models(profile):
        if not spec.persist:
            continue
        state = status(spec, store)
        info: dict = {}
        if state in ("fresh", "stale"):
            try:
                info = json.loads(model_paths(spec, store)[1].read_text(encoding="utf-8")).get("info", {})
            except (OSError, ValueError):
                state = "corrupt"
        seconds = info.get("seconds")
        rows.append([spec.name, spec.chapter, state if state == "fresh" else f"**{state}**",
                     str(info.get("finished", "—")), f"{info.get('host', '—')} ({info.get('threads', '—')} threads)",
                     f"{seconds / 60:.0f} min" if isinstance(seconds, (int, float)) else "—"])
    if not rows:
        return "No trained models are stored."
    return markdown_table(["model", "chapter", "status", "trained", "where", "training time"], rows)


def reproducibility_page(root: str | Path) -> str:
    rows = []
    for r in chapter_records(root):
        if "error" in r:
            rows.append([r["notebook"], "—", "—", "—", "—", "—", r["error"]])
            continue
        if r["profile"] is None:
            rows.append([r["notebook"], "—", "—", "—", "—", "—", "no stamp: never run by the runner"])
            continue
        wall = f"{r['wall_time_s']:.0f} s" if isinstance(r["wall_time_s"], (int, float)) else "—"
        date = (r["executed"] or "—")[:10]
        fresh = "yes" if r["fresh"] else "**no**: code or library changed since this run"
        rows.append([f"{r['notebook']} ({r['title']})", r["profile"], r["device"], wall, r["library_version"],
                     date, fresh])
    table = markdown_table(
        ["chapter", "profile", "device", "wall time", "library", "executed", "fresh"], rows) if rows else \
        "No chapter notebooks found."
    return f"""# Reproducibility

Every chapter in this book is a notebook executed by the project's runner
(`python -m backprop2lib.run`). After a successful run the runner stamps the notebook
with a hash of its code cells, its profile, and the library modules it imports, and
records where and how long it ran. This page is generated from those stamps at every
book build. *Fresh* means the stamp still matches the current code and library
sources: the outputs you read are what this code produces. A notebook that is not fresh
is re-run with `./scripts/book --stale`.

{table}

Profiles: `smoke` (a quick check of every code path, used by CI), `paper` (the committed
results, sized for a 2-core CPU), `full` (the published scale, for a GPU). Timings were
taken on shared machines and are only indicative; the benchmark page compares
implementations within one run.

## Stored trained models

Meta-training that does not fit a chapter's `paper` budget runs as a job of the trained-model
store (`python -m backprop2lib.store train`), which writes the result into `trained/` with a
stamp of the code that produced it. A `paper` run loads a model only while its stamp matches
(*fresh*); a stale or missing one is retrained first (`./scripts/book --stale`, or
`python -m backprop2lib.store train`). `smoke` trains every model afresh at a tiny scale.

{stored_models_table(root)}
"""


CLAIM_LINE = re.compile(r"^(?P<statement>.+): (?P<verdict>True|False)$")
SEEDS_LINE = re.compile(r"training seeds:\s*(\d+)")


def chapter_claims(nb: nbformat.NotebookNode) -> tuple[list[tuple[str, bool]], int | None]:
    """The claims a notebook's claim cells printed (``statement: True|False`` lines, in order) and the
    training seeds they printed (None where no cell says)."""
    claims, seeds = [], None
    for cell in nb.cells:
        if cell.cell_type != "code" or "NBVAL_CHECK_OUTPUT" not in cell.source:
            continue
        for output in cell.get("outputs", []):
            text = output.get("text", "") if output.get("output_type") == "stream" else \
                output.get("data", {}).get("text/plain", "")
            for line in ("".join(text) if isinstance(text, list) else text).splitlines():
                m = CLAIM_LINE.match(line.strip())
                if m:
                    claims.append((m.group("statement"), m.group("verdict") == "True"))
                found = SEEDS_LINE.search(line)
                if found:
                    seeds = int(found.group(1))
    return claims, seeds


def findings_page(root: str | Path) -> str:
    root = Path(root)
    summary, sections = [], []
    for record in chapter_records(root):
        if "error" in record:
            summary.append([record["notebook"], "—", "—", "—", "—", record["error"]])
            continue
        nb = nbformat.read(str(root / "notebooks" / record["notebook"]), as_version=4)
        claims, seeds = chapter_claims(nb)
        held = sum(v for _, v in claims)
        seeds_text = str(seeds) if seeds is not None else "one training run (no seed count printed)"
        run = "never run by the runner" if record["profile"] is None else \
            f"{record['profile']}, {record['device']}, {(record['executed'] or '—')[:10]}" + \
            ("" if record["fresh"] else " (**not fresh**: code or library changed since)")
        summary.append([f"{record['notebook']} ({record['title']})", str(len(claims)), f"{held} of {len(claims)}",
                        str(seeds) if seeds is not None else "—", run])
        rows = [[statement, "holds" if verdict else "**does not hold**"] for statement, verdict in claims]
        sections.append(f"## {record['title']}\n\n`{record['notebook']}`; training seeds: {seeds_text}; "
                        f"run: {run}.\n\n" + (markdown_table(["claim", "verdict"], rows) if rows else
                                               "This chapter's claim cells printed no claims."))
    table = markdown_table(["chapter", "claims", "holding", "training seeds", "run"], summary) if summary else \
        "No chapter notebooks found."
    return f"""# Findings

Every chapter ends with a claim cell: each directional statement of its findings (beats, loses,
reproduces, tracks) is computed from the run and printed as a verdict, and the notebook stops if
one does not hold. This page gathers those verdicts as the committed notebooks printed them, at
every book build: the book's scoreboard. *Training seeds* is how many independently trained
models each verdict was read over (the interval across seeds); a chapter that prints no seed
count was trained once, and its intervals are over test tasks only.

{table}

""" + "\n\n".join(sections) + "\n"


def _demote_headings(text: str) -> str:
    """Renumber a result file's heading levels to ##, ###, ... in order of depth, so it nests
    under this page's title without skipping a level (the book builds with warnings as errors)."""
    pattern = re.compile(r"^(#{1,6}) ", flags=re.MULTILINE)
    levels = sorted({len(m.group(1)) for m in pattern.finditer(text)})
    new_level = {level: min(2 + i, 6) for i, level in enumerate(levels)}
    return pattern.sub(lambda m: "#" * new_level[len(m.group(1))] + " ", text)


def benchmarks_page(root: str | Path) -> str:
    root = Path(root)
    parts = ["""# Benchmarks

Speed is measured, not claimed. The scripts in `benchmarks/` time the library against
its peers on the same problem, with the same torch, in one run, and write their tables
to `benchmarks/results/`; this page gathers them at every book build. Ratios within one
table are what to compare: absolute times depend on the machine and its load.
"""]
    files = sorted((root / "benchmarks" / "results").glob("*.md"))
    if not files:
        parts.append("No benchmark results have been recorded yet.\n")
    for path in files:
        parts.append(f"\nFrom `benchmarks/results/{path.name}`:\n\n" + _demote_headings(path.read_text()).strip() + "\n")
    return "\n".join(parts)


def write_pages(root: str | Path) -> list[Path]:
    """Write the appendix pages under ``root/book/appendix``; rewrite only what changed."""
    root = Path(root)
    out_dir = root / APPENDIX_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    pages = (("reproducibility.md", reproducibility_page(root)), ("benchmarks.md", benchmarks_page(root)),
             ("findings.md", findings_page(root)))
    for name, text in pages:
        path = out_dir / name
        if not path.exists() or path.read_text() != text:  # unchanged files keep Sphinx's cache valid
            path.write_text(text)
        written.append(path)
    return written


def setup(app):  # Sphinx extension entry point
    # config-inited runs before the table of contents is resolved and sources are read.
    app.connect("config-inited", lambda app, config: write_pages(app.srcdir), priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
