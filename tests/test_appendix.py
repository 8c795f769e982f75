import re

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from backprop2lib.appendix import benchmarks_page, chapter_records, reproducibility_page, write_pages
from backprop2lib.run.notebooks import add_stamp, compute_stamp


def _chapter(root, name, code="import backprop2lib.stats\nprint(1)", stamped=True):
    nb = new_notebook(cells=[new_markdown_cell(f"# Title of {name}"), new_code_cell(code)])
    if stamped:
        add_stamp(nb, compute_stamp(nb, "paper"), device="cpu", wall_time_s=12.3, executed="2026-01-02T03:04:05+00:00")
    path = root / "notebooks" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


def test_records_report_fresh_stale_unstamped_and_corrupt_notebooks(tmp_path):
    _chapter(tmp_path, "01_fresh.ipynb")
    stale = _chapter(tmp_path, "02_stale.ipynb")
    nb = nbformat.read(str(stale), as_version=4)
    nb.cells[1].source += "\nprint(2)"  # code changed after the run
    nbformat.write(nb, str(stale))
    _chapter(tmp_path, "03_never_run.ipynb", stamped=False)
    (tmp_path / "notebooks" / "04_broken.ipynb").write_text("{not json")
    (tmp_path / "notebooks" / "scratch.ipynb").write_text("{}")  # not a chapter: ignored
    records = {r["notebook"]: r for r in chapter_records(tmp_path)}
    assert sorted(records) == ["01_fresh.ipynb", "02_stale.ipynb", "03_never_run.ipynb", "04_broken.ipynb"]
    assert records["01_fresh.ipynb"]["fresh"] is True
    assert records["01_fresh.ipynb"]["title"] == "Title of 01_fresh.ipynb"
    assert records["01_fresh.ipynb"]["wall_time_s"] == 12.3 and records["01_fresh.ipynb"]["profile"] == "paper"
    assert records["02_stale.ipynb"]["fresh"] is False
    assert records["03_never_run.ipynb"]["fresh"] is False and records["03_never_run.ipynb"]["profile"] is None
    assert "unreadable" in records["04_broken.ipynb"]["error"]

    page = reproducibility_page(tmp_path)
    row = {line.split(" ")[1]: line for line in page.splitlines() if line.startswith("| 0")}
    assert "| paper | cpu | 12 s | 0.1.0 | 2026-01-02 | yes |" in row["01_fresh.ipynb"]
    assert "**no**" in row["02_stale.ipynb"]
    assert "no stamp" in row["03_never_run.ipynb"] and "unreadable" in row["04_broken.ipynb"]


def test_benchmark_page_nests_result_files_without_skipping_heading_levels(tmp_path):
    results = tmp_path / "benchmarks" / "results"
    results.mkdir(parents=True)
    (results / "a.md").write_text("# Result A\n\ntext\n\n### Config 1\n\n| x |\n|---|\n| 1 |\n")
    page = benchmarks_page(tmp_path)
    levels = [len(m.group(1)) for m in re.finditer(r"^(#+) ", page, flags=re.MULTILINE)]
    assert levels == [1, 2, 3]  # page title, file title, config: consecutive
    assert "From `benchmarks/results/a.md`" in page and "| 1 |" in page
    assert "No benchmark results" in benchmarks_page(tmp_path / "empty")


def test_write_pages_rewrites_only_what_changed(tmp_path):
    _chapter(tmp_path, "01_fresh.ipynb")
    first = write_pages(tmp_path)
    assert [p.name for p in first] == ["reproducibility.md", "benchmarks.md", "findings.md"]
    mtimes = [p.stat().st_mtime_ns for p in first]
    write_pages(tmp_path)
    assert [p.stat().st_mtime_ns for p in first] == mtimes


def _claims_chapter(root, name, lines, *, seeds_line=None):
    text = "\n".join(([seeds_line] if seeds_line else []) + lines) + "\n"
    cell = new_code_cell("# NBVAL_CHECK_OUTPUT\ncheck()")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
    other = new_code_cell("print(2)")
    other.outputs = [nbformat.v4.new_output("stream", name="stdout", text="Not a claim: True\n")]
    nb = new_notebook(cells=[new_markdown_cell(f"# Title of {name}"), other, cell])
    add_stamp(nb, compute_stamp(nb, "paper"), device="cpu", wall_time_s=1.0, executed="2026-01-02T03:04:05+00:00")
    path = root / "notebooks" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))


def test_findings_page_lists_each_chapters_claims_verdicts_and_seed_count(tmp_path):
    from backprop2lib.appendix import chapter_claims, findings_page

    _claims_chapter(tmp_path, "01_seeds.ipynb", ["A beats B (K=10): True", "C loses to D: False"],
                    seeds_line="training seeds: 3; parameters per model: 10")
    _claims_chapter(tmp_path, "02_once.ipynb", ["E reproduces: True"])
    nb = nbformat.read(str(tmp_path / "notebooks" / "01_seeds.ipynb"), as_version=4)
    assert chapter_claims(nb) == ([("A beats B (K=10)", True), ("C loses to D", False)], 3)
    page = findings_page(tmp_path)
    assert "| 01_seeds.ipynb (Title of 01_seeds.ipynb) | 2 | 1 of 2 | 3 | paper, cpu, 2026-01-02 |" in page
    assert "| 02_once.ipynb (Title of 02_once.ipynb) | 1 | 1 of 1 | — | paper, cpu, 2026-01-02 |" in page
    assert "| A beats B (K=10) | holds |" in page and "| C loses to D | **does not hold** |" in page
    assert "training seeds: one training run (no seed count printed)" in page
    assert "Not a claim" not in page  # only the claim cells count
    written = write_pages(tmp_path)
    assert (tmp_path / "book" / "appendix" / "findings.md").read_text() == page
    assert sorted(p.name for p in written) == ["benchmarks.md", "findings.md", "reproducibility.md"]


def test_the_reproducibility_page_lists_stored_models(tmp_path):
    import shutil

    from backprop2lib.appendix import reproducibility_page, stored_models_table
    from backprop2lib.store import model_paths, registered_models

    (tmp_path / "notebooks").mkdir()
    specs = registered_models("paper")
    table = stored_models_table(tmp_path)  # an empty store: every model missing
    assert all(f"| {s.name} | {s.chapter} | **missing** |" in table for s in specs)
    # a stored model's JSON with another stamp: stale, and its record still shown
    store = tmp_path / "trained"
    store.mkdir()
    pt, js = model_paths(specs[0], store)
    pt.write_bytes(b"x")
    js.write_text('{"format": "backprop2-model/1", "stamp": "0", "config": {}, '
                  '"info": {"finished": "2026-12-01 10:00 UTC", "host": "box", "threads": 1, "seconds": 600}}')
    table = stored_models_table(tmp_path)
    assert f"| {specs[0].name} | 06 | **stale** | 2026-12-01 10:00 UTC | box (1 threads) | 10 min |" in table
    assert "## Stored trained models" in reproducibility_page(tmp_path)
