"""Every chapter is a jupytext pair, and both files hold the same cells.

``notebooks/NN_name.ipynb`` carries the committed outputs (the runner, nbval and the book read
it); ``notebooks/NN_name.md`` is the same notebook as MyST Markdown without outputs (what a
review or a text editor reads). ``notebooks/jupytext.toml`` and each notebook's
``jupytext.formats`` metadata pair them, so JupyterLab (with jupytext, a dev dependency) keeps
them in sync on every save. After editing one of them elsewhere, ``jupytext --sync`` brings the
other along. These tests fail when the two drift apart: a missing twin, a notebook that is not
paired, or a cell whose type, source, tags or figure metadata differ.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest

from backprop2lib.run.runner import NOTEBOOK_GLOB

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
TEXT_SUFFIX = ".md"
TEXT_FORMAT = "md:myst"
PAIRED_FORMATS = f"ipynb,{TEXT_FORMAT}"
TEXT_GLOB = NOTEBOOK_GLOB.removesuffix(".ipynb") + TEXT_SUFFIX
# Cell metadata the book renders from: tags (parameters, hide-input, nbval's) and myst-nb's
# figure captions. Everything else (ids, execution timings) lives in the .ipynb only.
COMPARED_METADATA = ("tags", "mystnb")


def text_twin(notebook: Path) -> Path:
    return notebook.with_suffix(TEXT_SUFFIX)


def _shown(path: Path) -> str:
    try:
        return path.resolve().relative_to(REPO).as_posix()
    except ValueError:
        return str(path)


def _fields(cell) -> dict:
    meta = cell.get("metadata", {})
    fields = {"cell type": cell.cell_type, "source": cell.source}
    for key in COMPARED_METADATA:
        value = meta.get(key)
        fields[f"metadata {key!r}"] = [] if key == "tags" and value is None else value
    return fields


def _first_line_difference(a: str, b: str) -> str:
    lines_a, lines_b = a.splitlines(), b.splitlines()
    for number, (x, y) in enumerate(zip(lines_a, lines_b), start=1):
        if x != y:
            return f"line {number}: {x!r} in the .ipynb, {y!r} in the {TEXT_SUFFIX}"
    number = min(len(lines_a), len(lines_b)) + 1
    return (f"line {number}: the .ipynb has {len(lines_a)} lines, the {TEXT_SUFFIX} {len(lines_b)} "
            "(or they differ in trailing whitespace)")


def _describe(cell) -> str:
    first = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
    return f"{cell.cell_type} cell starting {first[:60]!r}"


def pair_problem(notebook: str | Path) -> str | None:
    """None when ``notebook`` and its text twin hold the same cells; otherwise what differs
    first (which notebook, which cell, how) and the command that fixes it."""
    notebook = Path(notebook)
    text = text_twin(notebook)
    nb_name, text_name = _shown(notebook), _shown(text)
    sync = (f"jupytext --sync {nb_name} (it takes the cells from the file modified last: if your edit "
            f"is in {text_name}, `touch {text_name}` first), then check `git diff`")
    if not text.is_file():
        return (f"{nb_name} has no text twin {text_name}. Fix: jupytext --set-formats {PAIRED_FORMATS} {nb_name}")
    ipynb = jupytext.read(notebook)
    formats = ipynb.metadata.get("jupytext", {}).get("formats")
    if formats != PAIRED_FORMATS:
        return (f"{nb_name} is not paired (its metadata jupytext.formats is {formats!r}, not "
                f"{PAIRED_FORMATS!r}). Fix: jupytext --set-formats {PAIRED_FORMATS} {nb_name}")
    md = jupytext.read(text, fmt=TEXT_FORMAT)
    for index, (a, b) in enumerate(zip(ipynb.cells, md.cells)):
        fa, fb = _fields(a), _fields(b)
        differing = [name for name in fa if fa[name] != fb[name]]
        if differing:
            name = differing[0]
            how = (_first_line_difference(fa[name], fb[name]) if name == "source"
                   else f"{fa[name]!r} in the .ipynb, {fb[name]!r} in the {TEXT_SUFFIX}")
            also = f" (also differing: {', '.join(differing[1:])})" if differing[1:] else ""
            return (f"{nb_name} and {text_name} are out of sync at cell {index} ({_describe(a)}): "
                    f"{name}, {how}{also}. Fix: {sync}")
    if len(ipynb.cells) != len(md.cells):
        longer, extra = (("the .ipynb", ipynb.cells) if len(ipynb.cells) > len(md.cells)
                         else (f"the {TEXT_SUFFIX}", md.cells))
        index = min(len(ipynb.cells), len(md.cells))
        return (f"{nb_name} has {len(ipynb.cells)} cells and {text_name} {len(md.cells)}: cell {index} "
                f"({_describe(extra[index])}) is only in {longer}. Fix: {sync}")
    return None


def orphan_texts(folder: str | Path) -> list[Path]:
    """Text twins in ``folder`` whose notebook is missing (renamed or deleted on one side only)."""
    return [text for text in sorted(Path(folder).glob(TEXT_GLOB)) if not text.with_suffix(".ipynb").is_file()]


# ------------------------------------------------------------------- the chapters

CHAPTERS = sorted(NOTEBOOKS.glob(NOTEBOOK_GLOB))


def test_there_are_chapters_to_check():
    assert CHAPTERS, f"no {NOTEBOOK_GLOB} in {NOTEBOOKS}"


@pytest.mark.parametrize("notebook", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_and_its_text_twin_hold_the_same_cells(notebook):
    problem = pair_problem(notebook)
    assert problem is None, problem


def test_every_text_twin_has_its_notebook():
    orphans = orphan_texts(NOTEBOOKS)
    assert not orphans, (
        f"text files without their notebook: {[_shown(p) for p in orphans]}. Fix: rename or delete the "
        f"{TEXT_SUFFIX} together with its .ipynb, or create the notebook with "
        f"`jupytext --set-formats {PAIRED_FORMATS} <file>` and run it (python -m backprop2lib.run <notebook>)")


# ------------------------------------------------------- the check itself can fail


def _pair(tmp_path: Path, name: str = "01_demo") -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["jupytext"] = {"formats": PAIRED_FORMATS}
    parameters = nbformat.v4.new_code_cell("profile = None")
    parameters.metadata["tags"] = ["parameters"]
    figure = nbformat.v4.new_code_cell("import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()")
    figure.metadata["tags"] = ["hide-input"]
    figure.metadata["mystnb"] = {"figure": {"caption": "A line.", "name": "fig-line"}}
    nb.cells = [
        nbformat.v4.new_markdown_cell("# A chapter\n\nSome *prose*."),
        parameters,
        nbformat.v4.new_code_cell("x = 1\nprint(x)", outputs=[nbformat.v4.new_output("stream", text="1\n")],
                                  execution_count=1),
        figure,
        nbformat.v4.new_markdown_cell("## Found\n\nThe end."),
    ]
    path = tmp_path / f"{name}.ipynb"
    nbformat.write(nb, path)
    jupytext.write(nb, text_twin(path), fmt=TEXT_FORMAT)
    return path


def _edit_text(path: Path, old: str, new: str) -> None:
    text = text_twin(path)
    content = text.read_text(encoding="utf-8")
    assert content.count(old) == 1, content
    text.write_text(content.replace(old, new), encoding="utf-8")


def test_a_fresh_pair_is_in_sync(tmp_path):
    path = _pair(tmp_path)
    assert "```{code-cell}" in text_twin(path).read_text(encoding="utf-8")
    assert pair_problem(path) is None
    assert orphan_texts(tmp_path) == []


def test_an_edited_source_is_reported_with_cell_line_and_fix(tmp_path):
    path = _pair(tmp_path)
    _edit_text(path, "x = 1", "x = 2")
    problem = pair_problem(path)
    assert problem is not None
    assert "01_demo.ipynb" in problem and "cell 2" in problem and "source" in problem
    assert "'x = 1' in the .ipynb, 'x = 2' in the .md" in problem
    assert "jupytext --sync" in problem


def test_an_edited_markdown_cell_is_reported(tmp_path):
    path = _pair(tmp_path)
    _edit_text(path, "Some *prose*.", "Other *prose*.")
    problem = pair_problem(path)
    assert problem is not None and "cell 0" in problem and "markdown cell" in problem


def test_a_changed_tag_is_reported(tmp_path):
    path = _pair(tmp_path)
    nb = nbformat.read(path, as_version=4)
    nb.cells[3].metadata["tags"] = []  # hide-input dropped in the notebook only
    nbformat.write(nb, path)
    problem = pair_problem(path)
    assert problem is not None and "cell 3" in problem and "metadata 'tags'" in problem


def test_a_changed_figure_caption_is_reported(tmp_path):
    path = _pair(tmp_path)
    _edit_text(path, "A line.", "A longer line.")
    problem = pair_problem(path)
    assert problem is not None and "cell 3" in problem and "metadata 'mystnb'" in problem


def test_a_cell_added_to_one_side_is_reported(tmp_path):
    path = _pair(tmp_path)
    text = text_twin(path)
    text.write_text(text.read_text(encoding="utf-8") + "\n```{code-cell} ipython3\nprint('new')\n```\n",
                    encoding="utf-8")
    problem = pair_problem(path)
    assert problem is not None and "cell 5" in problem and "only in the .md" in problem


def test_a_missing_twin_and_an_unpaired_notebook_are_reported(tmp_path):
    path = _pair(tmp_path)
    text_twin(path).unlink()
    assert "has no text twin" in pair_problem(path)
    path = _pair(tmp_path, "02_demo")
    nb = nbformat.read(path, as_version=4)
    del nb.metadata["jupytext"]
    nbformat.write(nb, path)
    assert "is not paired" in pair_problem(path)


def test_a_text_twin_without_its_notebook_is_reported(tmp_path):
    path = _pair(tmp_path)
    path.unlink()
    assert orphan_texts(tmp_path) == [text_twin(path)]


def test_jupytext_sync_repairs_a_drifted_pair(tmp_path):
    """The fix the messages name works: an edit in the text file reaches the notebook, whose
    outputs stay."""
    path = _pair(tmp_path)
    _edit_text(path, "x = 1", "x = 2")
    later = path.stat().st_mtime + 10
    os.utime(text_twin(path), (later, later))  # the text file is the one edited last
    subprocess.run([sys.executable, "-m", "jupytext", "--sync", str(path)], check=True, capture_output=True)
    assert pair_problem(path) is None
    nb = nbformat.read(path, as_version=4)
    assert nb.cells[2].source == "x = 2\nprint(x)" and nb.cells[2].outputs[0]["text"] == "1\n"
