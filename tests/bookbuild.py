"""The book's table of contents and its build, shared by tests/test_book.py (static HTML checks)
and tests/browser/test_book_pages.py (the same pages in a real browser).

The build itself is the session fixture ``built_book`` in tests/conftest.py: the book is built
ONCE per pytest session with

    jupyter-book build <repo> -W --keep-going --path-output <tmp>

(warnings are errors; ``execute_notebooks: off``, so it renders the outputs committed in the
notebooks and runs no code). To check a build that already exists instead, point
``BACKPROP2_BOOK_HTML`` at its ``_build/html`` directory; if ``BACKPROP2_BOOK_LOG`` names the
file holding that build's console output, the warning check runs on it too.

Pages are taken from ``_toc.yml``, so a chapter added there is checked without edits to the
tests. Chapter pages are the toc entries whose source is a notebook (``.ipynb``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
TOC = REPO / "_toc.yml"
CONFIG = REPO / "_config.yml"
ENV_HTML = "BACKPROP2_BOOK_HTML"
ENV_LOG = "BACKPROP2_BOOK_LOG"
BUILD_TIMEOUT_S = 1800
CHAPTERS_CAPTION = "Chapters"
SOURCE_SUFFIXES = (".ipynb", ".md", ".rst")


# --------------------------------------------------------------------------- the toc


@dataclass(frozen=True)
class TocEntry:
    file: str  # as written in _toc.yml, without suffix (e.g. "notebooks/01_maml_reptile")
    caption: str | None  # caption of the part it sits in (None for the root)

    @property
    def source(self) -> Path:
        """The source file in the repository (.ipynb or .md; suffix may be omitted in the toc)."""
        path = REPO / self.file
        if path.suffix in SOURCE_SUFFIXES and path.exists():
            return path
        for suffix in SOURCE_SUFFIXES:
            candidate = path.with_name(path.name + suffix)
            if candidate.exists():
                return candidate
        return path

    @property
    def page(self) -> str:
        """Path of the HTML page relative to the html directory."""
        stem = self.file
        for suffix in SOURCE_SUFFIXES:
            stem = stem.removesuffix(suffix)
        return stem + ".html"

    @property
    def is_notebook(self) -> bool:
        return self.source.suffix == ".ipynb"


def _walk(items: list | None, caption: str | None, out: list[TocEntry]) -> None:
    for item in items or []:
        if "file" in item:
            out.append(TocEntry(str(item["file"]), caption))
        for key in ("sections", "chapters"):
            _walk(item.get(key), caption, out)
        if "parts" in item:
            for part in item["parts"]:
                _walk(part.get("chapters"), part.get("caption"), out)


def toc_entries() -> list[TocEntry]:
    """Every page of _toc.yml in reading order, the root first."""
    toc = yaml.safe_load(TOC.read_text(encoding="utf-8"))
    entries = [TocEntry(str(toc["root"]), None)]
    for part in toc.get("parts") or []:
        _walk(part.get("chapters"), part.get("caption"), entries)
    _walk(toc.get("chapters"), None, entries)
    _walk(toc.get("sections"), None, entries)
    return entries


def chapter_entries(entries: list[TocEntry] | None = None) -> list[TocEntry]:
    """The chapter pages: toc entries whose source is a notebook."""
    return [e for e in (entries if entries is not None else toc_entries()) if e.is_notebook]


def book_title() -> str:
    return str(yaml.safe_load(CONFIG.read_text(encoding="utf-8"))["title"])


# --------------------------------------------------------------------------- the build


@dataclass
class Build:
    html: Path  # the built _build/html directory
    returncode: int | None  # None when an existing build is reused
    log: str | None  # the build's console output (None: reused without BACKPROP2_BOOK_LOG)
    seconds: float | None


def reuse_from_env() -> Build | None:
    """The build named by BACKPROP2_BOOK_HTML (and BACKPROP2_BOOK_LOG), or None if unset."""
    existing = os.environ.get(ENV_HTML)
    if not existing:
        return None
    html = Path(existing).resolve()
    assert (html / "index.html").is_file(), f"{ENV_HTML}={existing} is not a built book (no index.html)"
    log_file = os.environ.get(ENV_LOG)
    log = Path(log_file).read_text(encoding="utf-8", errors="replace") if log_file else None
    return Build(html, None, log, None)


def build_book(out: Path) -> Build:
    """Run ``jupyter-book build`` on the repository into ``out``; a failed build is returned
    (with its exit status and log), not raised, so the tests can report it."""
    command = [
        sys.executable,
        "-c",
        "import sys; from jupyter_book.cli.main import main; sys.exit(main())",
        "build",
        str(REPO),
        "-W",
        "--keep-going",
        "--path-output",
        str(out),
    ]
    start = time.perf_counter()
    proc = subprocess.run(
        command,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        timeout=BUILD_TIMEOUT_S,
    )
    seconds = time.perf_counter() - start
    print(f"jupyter-book build took {seconds:.1f} s")
    return Build(out / "_build" / "html", proc.returncode, proc.stdout, seconds)
