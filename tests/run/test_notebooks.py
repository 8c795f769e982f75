"""Cleaning executed notebooks and stamping them with their inputs (no kernels)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

import backprop2lib
from backprop2lib.run import notebooks as nbs
from backprop2lib.run.notebooks import (
    PACKAGE_ROOT,
    add_stamp,
    clean_notebook,
    collapse_carriage_returns,
    compute_stamp,
    is_stale,
    library_modules,
    read_stamp,
    write_atomic,
)
from nbchecks import assert_clean


def code(source, tags=None, **extra):
    cell = nbformat.v4.new_code_cell(source, **extra)
    if tags:
        cell.metadata["tags"] = tags
    return cell


def notebook(*cells):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [code("profile = None", tags=["parameters"]), *cells]
    return nb


# ---------------------------------------------------------------------------- cleaning


def executed_notebook():
    nb = notebook(
        code('# Parameters\nprofile = "paper"\n', tags=["injected-parameters"]),
        code("print(x)", execution_count=3, outputs=[
            nbformat.v4.new_output("stream", name="stdout", text="obj <Foo object at 0x7f3a2b1c9d80>\nloss 1\r"),
            nbformat.v4.new_output("stream", name="stdout", text="loss 2\rloss 3\ndone\r\n"),
            nbformat.v4.new_output("execute_result", data={"text/plain": "<Bar at 0xdeadbeef12>"}, execution_count=3),
            nbformat.v4.new_output("error", ename="E", evalue="at 0x1234567", traceback=["frame 0xabcdef01"]),
        ]),
    )
    nb.cells[0].execution_count = 1
    nb.cells[0].metadata["papermill"] = {"duration": 0.1, "status": "completed"}
    nb.cells[0].metadata["execution"] = {"iopub.status.busy": "2024-01-01"}
    marker = nbformat.v4.new_markdown_cell("An Exception was encountered")
    marker.metadata["tags"] = ["papermill-error-cell-tag"]
    nb.cells.insert(0, marker)
    nb.metadata["papermill"] = {"parameters": {"profile": "paper"}, "duration": 3.2}
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    return nb


def test_clean_removes_papermill_metadata_widgets_and_renumbers_execution_counts():
    nb = clean_notebook(executed_notebook())
    assert "papermill" not in nb.metadata and "widgets" not in nb.metadata
    assert_clean(nb)
    assert not any("papermill-error-cell-tag" in c.metadata.get("tags", []) for c in nb.cells)


def test_clean_keeps_parameters_drops_injected_cell_keeps_kernelspec():
    nb = clean_notebook(executed_notebook())
    assert nb.cells[0].metadata["tags"] == ["parameters"]
    # the injected `profile = "paper"` would override $BACKPROP2_PROFILE in nbval and JupyterLab
    assert not any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)
    assert nb.metadata["kernelspec"]["name"] == "python3"


def test_clean_rewrites_addresses_and_collapses_progress_redraws():
    nb = clean_notebook(executed_notebook())
    outputs = nb.cells[1].outputs  # the injected cell before it was dropped
    assert [o.output_type for o in outputs] == ["stream", "execute_result", "error"]  # stream chunks merged
    assert outputs[0].text == "obj <Foo object at 0x...>\nloss 3\ndone\n"
    assert outputs[1].data["text/plain"] == "<Bar at 0x...>"
    assert outputs[2].evalue == "at 0x..." and outputs[2].traceback == ["frame 0x..."]
    nbformat.validate(nb)


def test_short_hex_numbers_are_not_addresses():
    nb = notebook(code("", outputs=[nbformat.v4.new_output("stream", name="stdout", text="flags 0xff 0x12345\n")]))
    assert clean_notebook(nb).cells[1].outputs[0].text == "flags 0xff 0x12345\n"


@pytest.mark.parametrize(("raw", "shown"), [
    ("a\rb\rc", "c"),
    ("10%\r50%\r100%\nnext", "100%\nnext"),
    ("bar 100%\r", "bar 100%"),  # not redrawn yet: the terminal still shows it
    ("line\r\nother\r\n", "line\nother\n"),  # Windows line ends are not redraws
    ("plain\ntext\n", "plain\ntext\n"),
])
def test_collapse_carriage_returns(raw, shown):
    assert collapse_carriage_returns(raw) == shown


# ------------------------------------------------------------------------------ stamps


@pytest.fixture()
def fake_lib(tmp_path):
    """A stand-in for backprop2lib with relative, absolute, nested and unused modules."""
    root = tmp_path / "lib" / "backprop2lib"
    files = {
        "__init__.py": '__version__ = "9"\n',
        "alpha.py": "from .beta import helper\n",
        "beta.py": "def helper():\n    from backprop2lib.gamma.delta import g\n    return g\n",
        "gamma/__init__.py": "",
        "gamma/delta.py": "from .. import epsilon\ng = 1\n",
        "epsilon.py": "import os\n",
        "unused.py": "x = 1\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


TRANSITIVE = ["backprop2lib/__init__.py", "backprop2lib/alpha.py", "backprop2lib/beta.py",
              "backprop2lib/epsilon.py", "backprop2lib/gamma/__init__.py", "backprop2lib/gamma/delta.py"]


def test_library_modules_follow_imports_transitively(fake_lib):
    assert library_modules(["from backprop2lib import alpha"], fake_lib) == TRANSITIVE


@pytest.mark.parametrize(("source", "expected"), [
    ("import numpy as np", ["backprop2lib/__init__.py"]),
    ("import backprop2lib", ["backprop2lib/__init__.py"]),
    ("from backprop2lib import __version__", ["backprop2lib/__init__.py"]),
    ("import backprop2lib.epsilon as e", ["backprop2lib/__init__.py", "backprop2lib/epsilon.py"]),
    ("from backprop2lib.gamma import delta", TRANSITIVE[:1] + TRANSITIVE[3:]),
    ("%matplotlib inline\nimport backprop2lib.epsilon", ["backprop2lib/__init__.py", "backprop2lib/epsilon.py"]),
])
def test_library_modules_forms_of_import(fake_lib, source, expected):
    assert library_modules([source], fake_lib) == expected


def test_default_package_root_is_the_installed_library():
    assert PACKAGE_ROOT == Path(backprop2lib.__file__).resolve().parent
    assert "backprop2lib/profiles.py" in library_modules(["from backprop2lib.profiles import resolve_profile"])


def stamp_of(nb, lib, profile="paper"):
    return compute_stamp(nb, profile, lib).stamp


def test_stamp_changes_with_code_profile_and_imported_library(fake_lib):
    nb = notebook(code("from backprop2lib import alpha"), code("print(1)"))
    base = stamp_of(nb, fake_lib)
    assert stamp_of(nb, fake_lib) == base  # deterministic
    assert stamp_of(nb, fake_lib, "full") != base

    edited = notebook(code("from backprop2lib import alpha"), code("print(2)"))
    assert stamp_of(edited, fake_lib) != base

    (fake_lib / "gamma" / "delta.py").write_text("from .. import epsilon\ng = 2\n")  # imported two levels deep
    assert stamp_of(nb, fake_lib) != base


def test_stamp_ignores_markdown_unimported_modules_and_injected_parameters(fake_lib):
    nb = notebook(code("from backprop2lib import alpha"))
    base = stamp_of(nb, fake_lib)
    nb.cells.append(nbformat.v4.new_markdown_cell("# A new explanation"))
    (fake_lib / "unused.py").write_text("x = 2\n")
    nb.cells.insert(1, code('# Parameters\nprofile = "paper"\n', tags=["injected-parameters"]))
    assert stamp_of(nb, fake_lib) == base
    nb.cells[1].source = '# Parameters\nprofile = "paper"\nseed = 3\n'
    assert stamp_of(nb, fake_lib) == base


def test_is_stale_tracks_library_and_code(tmp_path, fake_lib):
    path = tmp_path / "01_x.ipynb"
    nb = notebook(code("import backprop2lib.alpha"))
    nbformat.write(nb, path)
    assert is_stale(path, fake_lib)  # never stamped

    add_stamp(nb, compute_stamp(nb, "paper", fake_lib), device="cpu", wall_time_s=1.25)
    nbformat.write(nb, path)
    assert not is_stale(path, fake_lib)
    assert is_stale(path, fake_lib, profile="full")  # stamped under another profile

    (fake_lib / "beta.py").write_text("def helper():\n    return 3\n")
    assert is_stale(path, fake_lib)


def test_stamp_metadata_fields(fake_lib):
    nb = notebook(code("from backprop2lib import alpha"))
    stamp = compute_stamp(nb, "paper", fake_lib)
    add_stamp(nb, stamp, device="cuda:0", wall_time_s=12.34, executed="2024-05-01T00:00:00+00:00")
    meta = read_stamp(nb)
    assert meta == {
        "stamp": stamp.stamp, "profile": "paper", "library_modules": TRANSITIVE, "device": "cuda:0",
        "wall_time_s": 12.3, "library_version": backprop2lib.__version__, "executed": "2024-05-01T00:00:00+00:00",
    }
    assert len(stamp.stamp) == 64


# ------------------------------------------------------------------------------ writes


def test_write_atomic_writes_and_keeps_mode(tmp_path):
    path = tmp_path / "n.ipynb"
    path.write_text("old")
    path.chmod(0o640)
    nb = notebook(code("print(1)"))
    write_atomic(nb, path)
    assert nbformat.read(path, as_version=4).cells[1].source == "print(1)"
    assert path.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n.ipynb"]


def test_write_atomic_failure_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "n.ipynb"
    path.write_bytes(b"precious")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(nbs.os, "replace", broken_replace)
    with pytest.raises(OSError):
        write_atomic(notebook(code("x")), path)
    assert path.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n.ipynb"]  # no temp file left behind


# ------------------------------------------------------------------------ jupytext pairs


def test_a_written_back_notebook_stays_in_sync_with_its_text_twin(tmp_path):
    """paper/full runs write the executed notebook over the chapter: the cleaned notebook keeps
    its jupytext pairing and the cells of its .md twin (which the runner never touches)."""
    import jupytext

    from .test_notebook_pairs import PAIRED_FORMATS, TEXT_FORMAT, pair_problem, text_twin

    figure = code("plt.plot([1, 2])\nplt.show()", tags=["hide-input"])
    figure.metadata["mystnb"] = {"figure": {"caption": "A line.", "name": "fig-line"}}
    nb = notebook(code("import matplotlib.pyplot as plt", tags=["hide-input"]),
                  nbformat.v4.new_markdown_cell("Some *prose*."), code("print(1)"), figure)
    nb.metadata["jupytext"] = {"formats": PAIRED_FORMATS}
    path = tmp_path / "01_chapter.ipynb"
    nbformat.write(nb, path)
    jupytext.write(nb, text_twin(path), fmt=TEXT_FORMAT)
    text_before = text_twin(path).read_bytes()
    assert pair_problem(path) is None

    # what papermill hands back: an injected-parameters cell after `parameters`, an empty tag
    # list and timings on every cell, outputs, run metadata
    executed = nbformat.read(path, as_version=4)
    executed.cells.insert(1, code('# Parameters\nprofile = "paper"\n', tags=["injected-parameters"]))
    for cell in executed.cells:
        cell.metadata.setdefault("tags", [])
        cell.metadata["papermill"] = {"duration": 0.1, "status": "completed"}
        if cell.cell_type == "code":
            cell.metadata["execution"] = {"iopub.status.busy": "2024-01-01"}
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    executed.metadata["papermill"] = {"parameters": {"profile": "paper"}, "duration": 3.2}
    add_stamp(executed, compute_stamp(executed, "paper"), device="cpu", wall_time_s=1.0)
    write_atomic(clean_notebook(executed), path)

    written = nbformat.read(path, as_version=4)
    assert written.metadata["jupytext"] == {"formats": PAIRED_FORMATS}
    assert [c.metadata.get("tags") for c in written.cells if c.cell_type == "code"] == [
        ["parameters"], ["hide-input"], None, ["hide-input"]]
    assert pair_problem(path) is None
    assert text_twin(path).read_bytes() == text_before
