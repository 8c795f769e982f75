"""JupyterLab, driven by a real browser: a chapter opens with a kernel that imports the
library from the source tree, and Run All works.

For each selected chapter this test

1. copies ``notebooks/NN_name.ipynb`` into a temporary directory and starts
   ``python -m jupyter lab`` (the interpreter running pytest, i.e. the README's ``.venv``) with
   that directory as its root, on 127.0.0.1, a free port and a random token, with
   ``BACKPROP2_PROFILE=smoke`` in the environment and Jupyter's config, data, runtime, settings
   and workspace directories pointed at temporary ones (no user settings leak in; the
   committed notebook in ``notebooks/`` is never opened, so autosave cannot touch it);
2. opens the notebook in Debian's chromium through Playwright (the ``new_page`` fixture of
   ``conftest.py``: headless, no browser download, every request to another host aborted),
   waits for an idle kernel,
   clears all outputs through the Edit menu (so the committed outputs cannot make it pass),
   then runs every cell through the Run menu;
3. asserts that every code cell got an execution count and that no cell shows an error, that the
   first line printed is ``profile: smoke`` (the environment variable reached the kernel), and
   that the claim cell (the one containing ``# NBVAL_CHECK_OUTPUT``) prints its verdicts, all
   ``: True`` and the same lines as the committed (paper) run;
4. inserts one cell through the UI, runs it with Shift+Enter and asserts that the kernel imports
   ``backprop2lib`` from ``src/`` of this checkout (the editable install) and runs in the same
   environment as the server;
5. saves a screenshot to ``_build/test-artifacts/screenshots/jupyterlab__<stem>.png``, shuts
   the server and its kernels down, and checks that the committed notebook's bytes are unchanged
   (if another process rewrote it meanwhile, that is a warning unless the file bears this
   test's marks).

The server log goes to ``_build/test-artifacts/logs/jupyterlab__server.log``.

Only the first chapter runs by default (a smoke run takes about a minute on 2 cores). Set
``BACKPROP2_JUPYTERLAB_CHAPTERS`` to ``all`` or to comma-separated stems (``01_maml_reptile``)
to choose others. The browser is ``$BACKPROP2_CHROMIUM``, else ``chromium`` on ``PATH``; without
one the test is skipped (see ``conftest.py``).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"
ENV_CHAPTERS = "BACKPROP2_JUPYTERLAB_CHAPTERS"
ARTIFACTS = REPO / "_build" / "test-artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
SERVER_LOG = ARTIFACTS / "logs" / "jupyterlab__server.log"

SERVER_START_TIMEOUT_S = 90
KERNEL_IDLE_TIMEOUT_S = 120
# The longest smoke run (chapter 1 or 3, about 90 s on 2 idle cores) with room for a loaded machine.
RUN_ALL_TIMEOUT_S = 300
CELL_TIMEOUT_S = 60
SHUTDOWN_TIMEOUT_S = 20

CLAIM_MARKER = "# NBVAL_CHECK_OUTPUT"
PROBE_SOURCE = "import sys, backprop2lib; print(backprop2lib.__file__); print(sys.prefix)"
ERROR_MIME = "application/vnd.jupyter.error"
TRACEBACK_TEXT = "Traceback (most recent call last)"
PROMPT_DONE_RE = re.compile(r"^\[(\d+)\]:$")
VERDICT_RE = re.compile(r"^(?P<claim>.+): (?P<verdict>True|False)$")

# User settings written into the temporary settings directory: every cell stays attached to the
# DOM (so the test sees all prompts and outputs without scrolling), and JupyterLab never asks
# about, or fetches, news and updates from the internet.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
}


# --------------------------------------------------------------------------- selection


def _chapters() -> list[Path]:
    found = sorted((REPO / "notebooks").glob(NOTEBOOK_GLOB))
    wanted = os.environ.get(ENV_CHAPTERS, "").strip()
    if not wanted:
        return found[:1]
    if wanted == "all":
        return found
    names = [w.strip().removesuffix(".ipynb") for w in wanted.split(",") if w.strip()]
    by_stem = {p.stem: p for p in found}
    unknown = [n for n in names if n not in by_stem]
    if unknown:
        raise pytest.UsageError(f"{ENV_CHAPTERS}: no chapter named {unknown}; have {sorted(by_stem)}")
    return [by_stem[n] for n in names]


CHAPTERS = _chapters()


# --------------------------------------------------------------------------- the server


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (Linux /proc; empty elsewhere)."""
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:  # a zombie is as good as gone
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _log_tail(n: int = 60) -> str:
    try:
        return "\n".join(SERVER_LOG.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no server log)"


class LabServer:
    def __init__(self, root: Path, port: int, token: str, proc: subprocess.Popen):
        self.root, self.port, self.token, self.proc = root, port, token, proc
        self.base = f"http://127.0.0.1:{port}"

    def api(self, path: str, method: str = "GET", timeout: float = 5) -> bytes:
        req = urllib.request.Request(f"{self.base}{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.read()

    def lab_url(self, relpath: str) -> str:
        return f"{self.base}/lab/tree/{quote(relpath)}?token={self.token}"


@contextmanager
def lab_server(root: Path, work: Path):
    """Start ``jupyter lab`` serving ``root``; always shut it and its kernels down afterwards."""
    env = dict(os.environ)
    for var in ("PYTHONPATH", "JUPYTER_PATH", "JUPYTER_CONFIG_PATH", "PYTHONSTARTUP"):
        env.pop(var, None)  # the kernel must find backprop2lib through the install alone
    dirs = {name: work / name for name in ("config", "data", "runtime", "ipython", "settings", "workspaces")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    for plugin, values in LAB_SETTINGS.items():
        f = dirs["settings"] / f"{plugin}.jupyterlab-settings"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(values))
    env.update(
        BACKPROP2_PROFILE="smoke",
        BACKPROP2_PROGRESS="0",
        CUDA_VISIBLE_DEVICES="",
        PYDEVD_DISABLE_FILE_VALIDATION="1",
        JUPYTER_CONFIG_DIR=str(dirs["config"]),
        JUPYTER_DATA_DIR=str(dirs["data"]),
        JUPYTER_RUNTIME_DIR=str(dirs["runtime"]),
        IPYTHONDIR=str(dirs["ipython"]),
        JUPYTERLAB_SETTINGS_DIR=str(dirs["settings"]),
        JUPYTERLAB_WORKSPACES_DIR=str(dirs["workspaces"]),
    )
    port, token = _free_port(), secrets.token_hex(24)
    cmd = [
        sys.executable, "-m", "jupyter", "lab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--ServerApp.open_browser=False",
        f"--LabApp.user_settings_dir={dirs['settings']}",
        f"--LabApp.workspaces_dir={dirs['workspaces']}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",  # never asks PyPI
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers and CI often run as root
        cmd.append("--ServerApp.allow_root=True")
    SERVER_LOG.parent.mkdir(parents=True, exist_ok=True)
    log = SERVER_LOG.open("wb")
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    server = LabServer(root, port, token, proc)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"jupyter lab exited with {proc.returncode}:\n{_log_tail()}")
            try:
                json.loads(server.api("/api/status", timeout=2))
                break
            except (OSError, ValueError):
                if time.monotonic() > deadline:
                    raise AssertionError(f"jupyter lab did not answer in {SERVER_START_TIMEOUT_S} s:\n{_log_tail()}")
                time.sleep(0.5)
        yield server
    finally:
        _shutdown(server)
        log.close()


def _shutdown(server: LabServer) -> None:
    proc = server.proc
    kernels = _children(proc.pid)  # kernels run in sessions of their own; remember them
    if proc.poll() is None:
        try:
            server.api("/api/shutdown", method="POST")
        except (OSError, urllib.error.URLError):
            pass
        try:
            proc.wait(SHUTDOWN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
    deadline = time.monotonic() + 10
    while any(_alive(k) for k in kernels) and time.monotonic() < deadline:
        time.sleep(0.2)
    for k in kernels:
        if _alive(k):  # the server did not shut this kernel down: do it
            print(f"[jupyterlab] killing leftover kernel process {k}", file=sys.stderr)
            try:
                os.killpg(k, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                os.kill(k, signal.SIGKILL)


# --------------------------------------------------------------------------- the page


# JS run in the page: the notebook as the user sees it.
_CELLS_JS = """
() => Array.from(document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell')).map(c => ({
  code: c.classList.contains('jp-CodeCell'),
  active: c.classList.contains('jp-mod-active'),
  prompt: (c.querySelector('.jp-InputArea-prompt') || {textContent: ''}).textContent.trim(),
  source: Array.from(c.querySelectorAll('.jp-InputArea-editor .cm-line')).map(l => l.textContent).join('\\n'),
  outputs: Array.from(c.querySelectorAll('.jp-OutputArea-output')).map(o => ({
    mime: o.getAttribute('data-mime-type') || '',
    text: o.textContent,
  })),
}))
"""
_KERNEL_STATUS_JS = """
() => { const e = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator');
        return e ? e.getAttribute('data-status') : null; }
"""


def _cells(page) -> list[dict]:
    return page.evaluate(_CELLS_JS)


def _kernel_status(page) -> str | None:
    return page.evaluate(_KERNEL_STATUS_JS)


def _wait_for(page, predicate, timeout_s: float, what: str, poll_ms: int = 500):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}\n"
                                 f"kernel: {_kernel_status(page)}\nprompts: {[c['prompt'] for c in _cells(page) if c['code']]}\n"
                                 f"server log:\n{_log_tail(30)}")
        page.wait_for_timeout(poll_ms)


def _menu(page, menu: str, label: str) -> None:
    """Click ``menu`` in the menu bar, then its item labelled ``label``."""
    page.locator(".lm-MenuBar-item", has_text=re.compile(rf"^{re.escape(menu)}$")).click()
    item = page.locator(".lm-Menu-content > .lm-Menu-item").filter(
        has=page.locator(".lm-Menu-itemLabel", has_text=re.compile(rf"^{re.escape(label)}$"))).first
    item.wait_for(state="visible", timeout=10_000)
    item.click()


def _errors(cells: list[dict]) -> list[str]:
    found = []
    for i, c in enumerate(cells):
        for o in c["outputs"]:
            if o["mime"] == ERROR_MIME or TRACEBACK_TEXT in o["text"]:
                found.append(f"cell {i}: {o['text'][-1500:]}")
    return found


def _screenshot(page, path: Path) -> None:
    try:
        page.screenshot(path=str(path))
        print(f"[jupyterlab] screenshot of the failure: {path.relative_to(REPO)}")
    except Exception as exc:  # the page may be gone; the original failure matters more
        print(f"[jupyterlab] no screenshot: {exc}")


def _committed_verdicts(nb: dict) -> list[str]:
    """The verdict lines of the committed claim cell (the same in every profile)."""
    for cell in nb["cells"]:
        if cell["cell_type"] == "code" and CLAIM_MARKER in "".join(cell["source"]):
            text = "".join("".join(o.get("text", "")) for o in cell.get("outputs", []) if o.get("output_type") == "stream")
            return [line for line in text.splitlines() if VERDICT_RE.match(line)]
    return []


def _text(cell: dict) -> str:
    return "".join(o["text"] for o in cell["outputs"])


# --------------------------------------------------------------------------- the test


@pytest.mark.parametrize("notebook", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_run_all_in_jupyterlab(notebook: Path, tmp_path: Path, new_page):
    committed = notebook.read_bytes()
    root = tmp_path / "lab"  # JupyterLab's root: it never sees notebooks/, so cannot save there
    root.mkdir()
    shutil.copy2(notebook, root / notebook.name)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / f"jupyterlab__{notebook.stem}.png"
    t0 = time.monotonic()
    try:
        with lab_server(root, tmp_path / "jupyter") as server:
            page = new_page(viewport={"width": 1400, "height": 1500})
            try:
                _run_all_and_check(page, server, notebook.name, json.loads(committed), shot)
            except BaseException:
                _screenshot(page, shot)  # what the page showed when it failed
                raise
            finally:
                page.close()  # before the server goes: no reconnecting kernels
            if page.blocked_requests:
                print(f"[jupyterlab] aborted {len(page.blocked_requests)} non-local requests, "
                      f"e.g. {page.blocked_requests[:3]}")
    finally:
        _assert_untouched(notebook, committed)
    print(f"[jupyterlab] {notebook.name}: {time.monotonic() - t0:.1f} s in all")


def _assert_untouched(notebook: Path, committed: bytes) -> None:
    """The committed notebook is byte for byte what it was before the test.

    If another process (a runner writing paper outputs back, a commit hook) rewrote it while the
    test ran, that is reported as a warning, unless the new file bears this test's marks: smoke
    outputs, the probe cell, or every output cleared, which only a save from the lab would leave.
    """
    now = notebook.read_bytes()
    if now == committed:
        return
    text = now.decode("utf-8", errors="replace")
    marks = [m for m in ("profile: smoke", PROBE_SOURCE) if m in text]
    code = [c for c in json.loads(text)["cells"] if c["cell_type"] == "code"]
    if code and not any(c.get("outputs") for c in code):
        marks.append("every output cleared")
    assert not marks, f"{notebook} was overwritten from JupyterLab during the test ({', '.join(marks)})"
    warnings.warn(f"{notebook.name} was rewritten during the test by another process (none of this "
                  "test's marks in it); the check that JupyterLab did not touch it is inconclusive")


def _run_all_and_check(page, server: LabServer, name: str, committed_nb: dict, shot: Path) -> None:
    n_cells = len(committed_nb["cells"])
    console_errors: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    page.goto(server.lab_url(name), wait_until="domcontentloaded", timeout=60_000)

    # The notebook, all of its cells, and a kernel that is idle.
    page.locator(".jp-NotebookPanel .jp-Notebook").first.wait_for(state="visible", timeout=60_000)
    _wait_for(page, lambda: len(_cells(page)) == n_cells, 30, f"{n_cells} cells in the notebook")
    _wait_for(page, lambda: _kernel_status(page) == "idle", KERNEL_IDLE_TIMEOUT_S, "an idle kernel")
    code_idx = [i for i, c in enumerate(_cells(page)) if c["code"]]
    assert code_idx, "the notebook shows no code cells"

    # Edit > Clear Outputs of All Cells: nothing committed is left to pass on.
    _menu(page, "Edit", "Clear Outputs of All Cells")
    _wait_for(page, lambda: all(not c["outputs"] and not PROMPT_DONE_RE.match(c["prompt"])
                                for c in _cells(page) if c["code"]),
              10, "all outputs and execution counts to be cleared")

    # Run > Run All Cells, then wait until no cell is queued or running and every code cell has
    # an execution count (or an error stopped the run).
    t_run = time.monotonic()
    _menu(page, "Run", "Run All Cells")

    def finished():
        cs = _cells(page)
        if _kernel_status(page) != "idle" or any(c["prompt"] == "[*]:" for c in cs):
            return None
        if all(PROMPT_DONE_RE.match(cs[i]["prompt"]) for i in code_idx) or _errors(cs):
            return cs
        return None

    cells = _wait_for(page, finished, RUN_ALL_TIMEOUT_S, "Run All to finish", poll_ms=1000)
    print(f"\n[jupyterlab] {name}: Run All took {time.monotonic() - t_run:.1f} s")

    errors = _errors(cells)
    assert not errors, "error output after Run All:\n" + "\n".join(errors)
    counts = [int(PROMPT_DONE_RE.match(cells[i]["prompt"]).group(1)) for i in code_idx]
    assert counts == list(range(1, len(code_idx) + 1)), f"execution counts {counts}: not one fresh run in order"

    printed = [line for i in code_idx for line in _text(cells[i]).splitlines() if line.strip()]
    assert printed, "Run All printed nothing"
    assert printed[0].startswith("profile: smoke"), f"first printed line: {printed[0]!r}"

    claim = [i for i in code_idx if CLAIM_MARKER in cells[i]["source"]]
    assert len(claim) == 1, f"expected one claim cell ({CLAIM_MARKER}), found cells {claim}"
    claim_lines = _text(cells[claim[0]]).splitlines()
    verdicts = [m for m in map(VERDICT_RE.match, claim_lines) if m]
    assert verdicts, "the claim cell shows no verdicts:\n" + "\n".join(claim_lines)
    false = [m.group("claim") for m in verdicts if m.group("verdict") == "False"]
    assert not false, f"claims shown as False: {false}"
    expected = _committed_verdicts(committed_nb)
    if expected:  # the committed run's verdict lines: the same in every profile
        assert [m.group(0) for m in verdicts] == expected

    # One more cell, typed and run through the UI: where does the kernel import the library from?
    all_cells = page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell")
    all_cells.last.locator(".jp-InputPrompt").click()  # select the last cell
    page.keyboard.press("Escape")
    page.locator('.jp-NotebookPanel-toolbar [data-command="notebook:insert-cell-below"]').first.click()
    _wait_for(page, lambda: len(_cells(page)) == n_cells + 1, 10, "the inserted cell")
    all_cells.nth(n_cells).locator(".cm-content").click()
    page.keyboard.type(PROBE_SOURCE)
    page.keyboard.press("Shift+Enter")

    def inserted_done():
        c = _cells(page)[n_cells]
        return c if PROMPT_DONE_RE.match(c["prompt"]) and c["outputs"] else None

    inserted = _wait_for(page, inserted_done, CELL_TIMEOUT_S, "the inserted cell to run")
    assert not _errors([inserted]), _errors([inserted])
    lines = [line.strip() for line in _text(inserted).splitlines() if line.strip()]
    assert len(lines) == 2, lines
    lib_file, prefix = Path(lines[0]).resolve(), Path(lines[1]).resolve()
    assert lib_file.is_relative_to((REPO / "src" / "backprop2lib").resolve()), (
        f"the kernel imports backprop2lib from {lib_file}, not from {REPO / 'src'}")
    assert prefix == Path(sys.prefix).resolve(), f"kernel environment {prefix}, server's {sys.prefix}"

    # The finished notebook, from the claim cell down (not saved).
    all_cells.nth(claim[0]).evaluate("e => e.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(300)
    page.screenshot(path=str(shot))
    print(f"[jupyterlab] screenshot: {shot.relative_to(REPO)}")
    if console_errors:
        print(f"[jupyterlab] {len(console_errors)} browser console errors, e.g. {console_errors[:3]}")
