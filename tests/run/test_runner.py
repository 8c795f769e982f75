"""The parallel runner on small real notebooks (real kernels, real papermill).

Two runs are shared by several tests (module fixtures), so the file starts only a
handful of kernels: one CLI run (paper profile, a good and a failing notebook, 2 jobs)
and one API run (smoke profile, profile echo + two dead-kernel notebooks, 2 jobs).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest

from backprop2lib.run import compute_stamp, is_stale, read_stamp, run_notebooks
from backprop2lib.run.notebooks import Stamp, add_stamp
from backprop2lib.run.runner import _finish, _Job, default_notebooks, format_table
from backprop2lib.run.slots import available_cores
from nbchecks import assert_clean

from .test_notebook_pairs import PAIRED_FORMATS, TEXT_FORMAT, pair_problem, text_twin

KERNEL_TIMEOUTS = ["--timeout", "120", "--start-timeout", "120"]


def write_notebook(path: Path, *sources: str) -> Path:
    """A notebook with a ``parameters`` cell, then one cell per source ('md:' = markdown)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    parameters = nbformat.v4.new_code_cell("profile = None")
    parameters.metadata["tags"] = ["parameters"]
    nb.cells = [parameters] + [
        nbformat.v4.new_markdown_cell(s[3:]) if s.startswith("md:") else nbformat.v4.new_code_cell(s) for s in sources
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def pair_with_text_twin(path: Path) -> Path:
    """Pair a notebook with a MyST twin, as the chapters are; tag its first code cell hide-input."""
    import jupytext

    nb = nbformat.read(path, as_version=4)
    nb.metadata["jupytext"] = {"formats": PAIRED_FORMATS}
    nb.cells[1].metadata["tags"] = ["hide-input"]
    nbformat.write(nb, path)
    jupytext.write(nb, text_twin(path), fmt=TEXT_FORMAT)
    return text_twin(path)


def child_env() -> dict[str, str]:
    # Deterministic planning (CPU slots even on a GPU box) and no profile leaking in.
    env = {k: v for k, v in os.environ.items() if k != "BACKPROP2_PROFILE"}
    env["CUDA_VISIBLE_DEVICES"] = ""
    return env


def outputs_text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts.extend(v for k, v in out.get("data", {}).items() if k.startswith("text/"))
    return "".join(parts)


GOOD = (
    "import os, sys\nclass Thing: pass\nprint(Thing())\n"
    "sys.stdout.write('progress 1/3\\r'); sys.stdout.flush()\n"
    "sys.stdout.write('progress 2/3\\r'); sys.stdout.flush()\nprint('progress 3/3')",
    "md:Some *prose*.",
    "from backprop2lib.profiles import resolve_profile\n"
    "print('resolved', resolve_profile(profile).name, 'threads', os.environ['OMP_NUM_THREADS'])",
    "Thing()",
)
BAD = ("x = 1", "md:# The failing cell is index 3 in the file", "raise ValueError('boom ' + str(x))", "print('never')")


# ------------------------------------------------------------------ CLI: good + failing


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    good = write_notebook(root / "notebooks" / "01_good.ipynb", *GOOD)
    good_text = pair_with_text_twin(good)  # as every chapter is (tests/run/test_notebook_pairs.py)
    bad = write_notebook(root / "notebooks" / "02_bad.ipynb", *BAD)
    expected_stamp = compute_stamp(nbformat.read(good, as_version=4), "paper").stamp
    bad_bytes = bad.read_bytes()
    good_text_bytes = good_text.read_bytes()
    proc = subprocess.run(
        [sys.executable, "-m", "backprop2lib.run", "--root", str(root), "--profile", "paper", "--jobs", "2",
         *KERNEL_TIMEOUTS],
        capture_output=True, text=True, cwd=root, env=child_env(), timeout=300,
    )
    return SimpleNamespace(root=root, good=good, bad=bad, bad_bytes=bad_bytes, proc=proc,
                           expected_stamp=expected_stamp, good_text=good_text, good_text_bytes=good_text_bytes)


@pytest.mark.slow
def test_cli_exit_status_is_nonzero_when_one_notebook_fails(cli_run):
    assert cli_run.proc.returncode == 1, cli_run.proc.stderr
    assert "1 ok, 1 failed" in cli_run.proc.stdout


@pytest.mark.slow
def test_cli_good_notebook_is_written_back_with_outputs_and_stamp(cli_run):
    nb = nbformat.read(cli_run.good, as_version=4)
    threads = str(max(1, available_cores() // 2))
    assert f"resolved paper threads {threads}" in outputs_text(nb)
    meta = read_stamp(nb)
    assert meta["stamp"] == cli_run.expected_stamp
    assert meta["profile"] == "paper" and meta["device"] == "cpu"
    assert "backprop2lib/profiles.py" in meta["library_modules"]
    assert not is_stale(cli_run.good)


@pytest.mark.slow
def test_cli_written_notebook_is_clean(cli_run):
    nb = nbformat.read(cli_run.good, as_version=4)
    text = outputs_text(nb)
    assert "<__main__.Thing object at 0x...>" in text and "<__main__.Thing at 0x...>" in text
    assert not re.search(r"0x[0-9a-f]{6,}", text)
    assert "progress 3/3" in text and "progress 1/3" not in text and "\r" not in text
    assert "papermill" not in nb.metadata
    assert_clean(nb)
    assert nb.cells[0].metadata.get("tags") == ["parameters"]
    assert not any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)


@pytest.mark.slow
def test_cli_written_notebook_stays_in_sync_with_its_text_twin(cli_run):
    nb = nbformat.read(cli_run.good, as_version=4)
    assert nb.metadata["jupytext"]["formats"] == PAIRED_FORMATS
    assert nb.cells[1].metadata.get("tags") == ["hide-input"]
    assert pair_problem(cli_run.good) is None
    assert cli_run.good_text.read_bytes() == cli_run.good_text_bytes  # the runner writes the .ipynb only


@pytest.mark.slow
def test_cli_failure_is_reported_and_leaves_the_notebook_untouched(cli_run):
    assert cli_run.bad.read_bytes() == cli_run.bad_bytes
    row = next(line for line in cli_run.proc.stdout.splitlines() if line.startswith("02_bad.ipynb"))
    assert re.search(r"\bfailed\b.*\b3\b.*ValueError: boom 1", row), row
    assert "FAILED 02_bad.ipynb" in cli_run.proc.stderr  # the per-notebook progress line
    log = cli_run.root / "_build" / "runner" / "logs" / "02_bad.log"
    assert "boom 1" in log.read_text()


@pytest.mark.slow
def test_cli_writes_machine_readable_records(cli_run):
    records = json.loads((cli_run.root / "_build" / "runner" / "records.json").read_text())
    by_name = {r["notebook"]: r for r in records}
    assert set(by_name) == {"notebooks/01_good.ipynb", "notebooks/02_bad.ipynb"}
    good, bad = by_name["notebooks/01_good.ipynb"], by_name["notebooks/02_bad.ipynb"]
    assert good["status"] == "ok" and good["stamp"] == cli_run.expected_stamp and good["wall_time_s"] > 0
    assert bad["status"] == "failed" and bad["cell_index"] == 3 and bad["error_name"] == "ValueError"
    for record in records:
        assert record["profile"] == "paper" and record["device"] == "cpu"
        assert {"library_version", "date"} <= set(record)


# --------------------------------------------------- API: smoke, profile, dead kernels

PROFILE_ECHO = ("import os\nprint(f\"param={profile} env={os.environ['BACKPROP2_PROFILE']} "
                "cuda={os.environ['CUDA_VISIBLE_DEVICES']!r} progress={os.environ['BACKPROP2_PROGRESS']}\")",)
DIES_ONCE = ("import os, pathlib\nmarker = pathlib.Path('02_dies_once.marker')\n"
             "if not marker.exists():\n    marker.write_text('died')\n    os._exit(1)\nprint('survived')",)
ALWAYS_DIES = ("x = 1", "import os\nos._exit(1)")


@pytest.fixture(scope="module")
def api_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    paths = [
        write_notebook(root / "notebooks" / "01_profile.ipynb", *PROFILE_ECHO),
        write_notebook(root / "notebooks" / "02_dies_once.ipynb", *DIES_ONCE),
        write_notebook(root / "notebooks" / "03_always_dies.ipynb", *ALWAYS_DIES),
    ]
    before = {p: p.read_bytes() for p in paths}
    results = run_notebooks(paths, profile="smoke", jobs=2, root=root, gpu_ids=[], cores=2, progress=False,
                            timeout=120, start_timeout=120)
    return SimpleNamespace(root=root, paths=paths, before=before, results={r.notebook.name: r for r in results},
                           order=[r.notebook for r in results])


@pytest.mark.slow
def test_smoke_writes_to_the_output_dir_and_never_to_notebooks(api_run):
    assert api_run.order == api_run.paths  # results come back in the order asked
    for path in api_run.paths:
        assert path.read_bytes() == api_run.before[path]
    out = api_run.root / "_build" / "smoke"
    assert sorted(p.name for p in out.glob("*.ipynb")) == ["01_profile.ipynb", "02_dies_once.ipynb"]
    assert api_run.results["01_profile.ipynb"].written_to == out / "01_profile.ipynb"
    assert read_stamp(nbformat.read(out / "01_profile.ipynb", as_version=4))["profile"] == "smoke"


@pytest.mark.slow
def test_profile_reaches_the_kernel(api_run):
    result = api_run.results["01_profile.ipynb"]
    assert result.ok and not result.retried and result.device == "cpu"
    nb = nbformat.read(result.written_to, as_version=4)
    assert "param=smoke env=smoke cuda='' progress=0" in outputs_text(nb)


@pytest.mark.slow
def test_dead_kernel_is_retried_once_and_then_succeeds(api_run):
    result = api_run.results["02_dies_once.ipynb"]
    assert result.ok and result.retried
    assert (api_run.root / "notebooks" / "02_dies_once.marker").exists()  # cwd was the notebook's folder
    assert "survived" in outputs_text(nbformat.read(result.written_to, as_version=4))


@pytest.mark.slow
def test_kernel_that_keeps_dying_fails_after_one_retry(api_run):
    result = api_run.results["03_always_dies.ipynb"]
    assert not result.ok and result.retried
    assert result.error_name == "DeadKernelError" and result.cell_index == 2
    assert "kernel died; retrying once" in result.log_path.read_text()
    assert "03_always_dies" in format_table(list(api_run.results.values()))


# ------------------------------------------------------------------ no kernel needed


def test_unknown_profile_is_a_clear_error(tmp_path):
    path = write_notebook(tmp_path / "01_x.ipynb", "print(1)")
    with pytest.raises(ValueError, match="valid profiles: smoke, paper, full"):
        run_notebooks([path], profile="huge", root=tmp_path)
    proc = subprocess.run([sys.executable, "-m", "backprop2lib.run", str(path), "--profile", "huge"],
                          capture_output=True, text=True, cwd=tmp_path, env=child_env())
    assert proc.returncode == 2
    assert "unknown profile 'huge'" in proc.stderr and "smoke, paper, full" in proc.stderr


def test_missing_notebook_is_a_usage_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "backprop2lib.run", "nope.ipynb", "--profile", "smoke"],
                          capture_output=True, text=True, cwd=tmp_path, env=child_env())
    assert proc.returncode == 2 and "nope.ipynb" in proc.stderr


def test_a_text_twin_is_a_usage_error(tmp_path):
    path = write_notebook(tmp_path / "notebooks" / "01_x.ipynb", "print(1)")
    text = pair_with_text_twin(path)
    proc = subprocess.run([sys.executable, "-m", "backprop2lib.run", str(text), "--profile", "smoke"],
                          capture_output=True, text=True, cwd=tmp_path, env=child_env())
    assert proc.returncode == 2 and "not .ipynb notebooks" in proc.stderr and "01_x.md" in proc.stderr


def test_default_selection_globs_the_notebooks_not_their_text_twins(tmp_path):
    pair_with_text_twin(write_notebook(tmp_path / "notebooks" / "01_x.ipynb", "print(1)"))
    assert default_notebooks(tmp_path) == [tmp_path / "notebooks" / "01_x.ipynb"]


def stamped(path: Path, *sources: str) -> Path:
    write_notebook(path, *sources)
    nb = nbformat.read(path, as_version=4)
    add_stamp(nb, compute_stamp(nb, "paper"), device="cpu", wall_time_s=1.0)
    nbformat.write(nb, path)
    return path


def test_list_stale_and_stale_selection(tmp_path):
    fresh = stamped(tmp_path / "notebooks" / "01_fresh.ipynb", "from backprop2lib import profiles")
    edited = stamped(tmp_path / "notebooks" / "02_edited.ipynb", "print(1)")
    nb = nbformat.read(edited, as_version=4)
    nb.cells[1].source = "print(2)"
    nbformat.write(nb, edited)
    write_notebook(tmp_path / "notebooks" / "03_never_run.ipynb", "print(3)")
    write_notebook(tmp_path / "notebooks" / "helper.ipynb", "print('not a chapter')")  # not NN_*.ipynb

    proc = subprocess.run([sys.executable, "-m", "backprop2lib.run", "--list-stale"], capture_output=True,
                          text=True, cwd=tmp_path, env=child_env())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["notebooks/02_edited.ipynb", "notebooks/03_never_run.ipynb"]
    # outputs of another profile are stale for this one (a smoke run committed in place is not a paper run)
    smoke = write_notebook(tmp_path / "notebooks" / "04_smoke_run.ipynb", "print(4)")
    nb = nbformat.read(smoke, as_version=4)
    add_stamp(nb, compute_stamp(nb, "smoke"), device="cpu", wall_time_s=1.0)
    nbformat.write(nb, smoke)
    proc = subprocess.run([sys.executable, "-m", "backprop2lib.run", "--list-stale", "--profile", "paper"],
                          capture_output=True, text=True, cwd=tmp_path, env=child_env())
    assert "notebooks/04_smoke_run.ipynb" in proc.stdout.split()
    proc = subprocess.run([sys.executable, "-m", "backprop2lib.run", "--list-stale", "--profile", "smoke",
                           str(smoke)], capture_output=True, text=True, cwd=tmp_path, env=child_env())
    assert proc.stdout.split() == []
    smoke.unlink()

    # --stale with nothing stale runs nothing (and starts no kernel).
    proc = subprocess.run([sys.executable, "-m", "backprop2lib.run", "--stale", str(fresh)], capture_output=True,
                          text=True, cwd=tmp_path, env=child_env())
    assert proc.returncode == 0 and "nothing to run" in proc.stderr
    assert not (tmp_path / "_build").exists()


def fake_job(tmp_path: Path, verdict: dict | None) -> _Job:
    notebook = write_notebook(tmp_path / "01_x.ipynb", "print(1)")
    executed = tmp_path / "01_x.executed.ipynb"
    executed.write_bytes(notebook.read_bytes())
    result = tmp_path / "01_x.result.json"
    if verdict is not None:
        result.write_text(json.dumps(verdict))
    import hashlib

    return _Job(notebook=notebook, destination=notebook, log_path=tmp_path / "01_x.log", executed_path=executed,
                result_path=result, input_sha256=hashlib.sha256(notebook.read_bytes()).hexdigest(),
                stamp=Stamp("s" * 64, "paper", ()))


def test_notebook_edited_during_the_run_is_not_overwritten(tmp_path):
    job = fake_job(tmp_path, {"status": "ok", "retried": False})
    job.notebook.write_text(job.notebook.read_text().replace("print(1)", "print('my edit')"))
    edited = job.notebook.read_bytes()
    result = _finish(job, "cpu", 0, 1.0, write_back=True)
    assert not result.ok and result.error_name == "SourceChanged"
    assert job.notebook.read_bytes() == edited


def test_job_that_dies_without_a_result_is_a_failure(tmp_path):
    job = fake_job(tmp_path, None)
    before = job.notebook.read_bytes()
    result = _finish(job, "cpu", -9, 1.0, write_back=True)
    assert not result.ok and result.error_name == "JobCrashed" and "-9" in result.error_message
    assert job.notebook.read_bytes() == before


@pytest.mark.slow
def test_cell_timeout_fails_the_notebook_and_names_the_cell(tmp_path):
    path = write_notebook(tmp_path / "01_slow.ipynb", "x = 1", "import time\ntime.sleep(60)")
    before = path.read_bytes()
    [result] = run_notebooks([path], profile="paper", root=tmp_path, gpu_ids=[], cores=2, progress=False,
                             timeout=2, start_timeout=120)
    assert not result.ok and result.cell_index == 2 and "Timeout" in result.error_name
    assert result.wall_time_s < 40
    assert path.read_bytes() == before
