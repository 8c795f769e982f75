"""The rendered book: built once, then checked the way a reader would see it.

The book is built ONCE per test session by the session fixture ``built_book``
(tests/conftest.py, shared with the browser tests in tests/browser/) with

    jupyter-book build <repo> -W --keep-going --path-output <tmp>

(warnings are errors; ``execute_notebooks: off``, so this renders the outputs committed
in the notebooks and runs no code). To check a build that already exists instead, point
``BACKPROP2_BOOK_HTML`` at its ``_build/html`` directory; if ``BACKPROP2_BOOK_LOG``
names the file holding that build's console output, the warning check runs on it too;
otherwise the log checks are skipped.

Pages are taken from ``_toc.yml`` (tests/bookbuild.py), so a chapter added there is checked
without edits here. Chapter pages are the toc entries whose source is a notebook (``.ipynb``).
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from bookbuild import CHAPTERS_CAPTION, ENV_LOG, REPO, TOC, Build, TocEntry, chapter_entries, toc_entries

pytestmark = pytest.mark.slow

BIB = REPO / "book" / "references.bib"
BIBLIOGRAPHY_PAGE = "book/references"

CITE_RE = re.compile(r"\{cite(?::[A-Za-z]+)?\}`([^`]*)`")
ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
WARNING_RE = re.compile(r"\bWARNING\b")
ERROR_NAME_RE = re.compile(r"\w*Error\b")
TRACEBACK_TEXT = "Traceback (most recent call last)"

ENTRIES = toc_entries()
CHAPTER_PAGES = chapter_entries(ENTRIES)


def first_chapter() -> TocEntry:
    chapters = [e for e in ENTRIES if e.caption == CHAPTERS_CAPTION] or CHAPTER_PAGES
    assert chapters, f"{TOC} lists no chapters"
    return chapters[0]


# --------------------------------------------------------------------------- HTML parsing


class Page(HTMLParser):
    """What a test needs from one page: text, images and links of the article body,
    and the text of the stderr / traceback output areas of notebook cells."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.article_depth = 0
        self.article_text: list[str] = []
        self.images: list[str] = []  # img src inside the article
        self.links: list[str] = []  # a href inside the article
        self.div_kinds: list[str | None] = []  # per open <div>: "stderr", "traceback" or None
        self.output_areas: list[tuple[str, list[str]]] = []  # (kind, text chunks)
        self.open_areas: list[tuple[str, list[str]]] = []
        self.saw_article = False
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "article":
            self.article_depth += 1
            self.saw_article = True
        elif tag == "img" and self.article_depth:
            self.images.append(attributes.get("src") or "")
        elif tag == "a" and self.article_depth and attributes.get("href"):
            self.links.append(attributes["href"] or "")
        elif tag == "div":
            classes = set((attributes.get("class") or "").split())
            kind = None
            if "output" in classes and "traceback" in classes:
                kind = "traceback"
            elif "output" in classes and "stderr" in classes:
                kind = "stderr"
            self.div_kinds.append(kind)
            if kind:
                area: tuple[str, list[str]] = (kind, [])
                self.output_areas.append(area)
                self.open_areas.append(area)

    def handle_endtag(self, tag: str) -> None:
        if tag == "article" and self.article_depth:
            self.article_depth -= 1
        elif tag == "div" and self.div_kinds:
            if self.div_kinds.pop() and self.open_areas:
                self.open_areas.pop()

    def handle_data(self, data: str) -> None:
        if self.article_depth:
            self.article_text.append(data)
        for _, chunks in self.open_areas:
            chunks.append(data)

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.article_text).split())


def local_target(page_path: Path, ref: str) -> Path | None:
    """File a relative src/href points at, or None for external/data/anchor-only refs."""
    parts = urlsplit(ref)
    if parts.scheme or parts.netloc or not parts.path:
        return None
    return (page_path.parent / unquote(parts.path)).resolve()


def is_png_or_svg(path: Path) -> bool:
    head = path.read_bytes()[:4096]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return path.suffix.lower() == ".png"
    return path.suffix.lower() == ".svg" and b"<svg" in head


# --------------------------------------------------------------------------- the build


@pytest.fixture
def book(built_book: Build) -> Build:
    """The session's book build (tests/conftest.py: built once, or reused from BACKPROP2_BOOK_HTML)."""
    return built_book


def _log_tail(build: Build, n: int = 60) -> str:
    return "\n".join((build.log or "").splitlines()[-n:])


def read_page(build: Build, entry: TocEntry) -> Page:
    path = build.html / entry.page
    assert path.is_file(), f"{entry.file}: page {path} was not built"
    return Page(path.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- tests


def test_build_exit_status(book: Build) -> None:
    if book.returncode is None:
        pytest.skip(f"reusing {book.html}; its build's exit status is not known here")
    assert book.returncode == 0, f"jupyter-book build failed (exit {book.returncode}):\n{_log_tail(book)}"


def test_build_has_no_warnings(book: Build) -> None:
    if book.log is None:
        pytest.skip(f"reusing {book.html} without a log (set {ENV_LOG} to check it)")
    warnings = [line for line in ANSI_RE.sub("", book.log).splitlines() if WARNING_RE.search(line)]
    assert not warnings, "the book build printed warnings:\n" + "\n".join(warnings)


def test_toc_sources_exist() -> None:
    missing = [e.file for e in ENTRIES if not e.source.is_file()]
    assert not missing, f"{TOC.name} lists files that do not exist: {missing}"


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.file for e in ENTRIES])
def test_toc_page_is_built(book: Build, entry: TocEntry) -> None:
    page = read_page(book, entry)
    assert page.text, f"{entry.page} has an empty article body"


def test_index_page_exists(book: Build) -> None:
    assert (book.html / "index.html").is_file()


@pytest.mark.parametrize("entry", CHAPTER_PAGES, ids=[e.file for e in CHAPTER_PAGES])
def test_chapter_page_has_figures(book: Build, entry: TocEntry) -> None:
    page_path = book.html / entry.page
    page = read_page(book, entry)
    figures, broken = [], []
    for src in page.images:
        target = local_target(page_path, src)
        if target is None:
            continue
        if not target.is_file() or target.stat().st_size == 0:
            broken.append(src)
        elif is_png_or_svg(target):
            figures.append(src)
    assert not broken, f"{entry.page}: images missing or empty: {broken}"
    assert figures, (
        f"{entry.page}: no PNG/SVG figure in the page body "
        f"(images found: {page.images}); were the notebook's outputs committed?"
    )


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.file for e in ENTRIES])
def test_page_has_no_error_output(book: Build, entry: TocEntry) -> None:
    raw = (book.html / entry.page).read_text(encoding="utf-8")
    assert TRACEBACK_TEXT not in raw, f"{entry.page} shows a Python traceback"
    page = Page(raw)
    problems = []
    for kind, chunks in page.output_areas:
        text = " ".join("".join(chunks).split())
        if kind == "traceback":
            problems.append(f"error output: {text[:300]}")
        elif ERROR_NAME_RE.search(text):
            problems.append(f"stderr output with an error: {text[:300]}")
    assert not problems, f"{entry.page}:\n" + "\n".join(problems)


def _cited_keys() -> dict[str, list[str]]:
    """Citation keys used in the book's sources (markdown pages and notebook markdown)."""
    keys: dict[str, list[str]] = {}
    for entry in ENTRIES:
        source = entry.source
        if not source.is_file():
            continue
        if source.suffix == ".ipynb":
            cells = json.loads(source.read_text(encoding="utf-8")).get("cells", [])
            texts = [
                "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
                for c in cells
                if c.get("cell_type") == "markdown"
            ]
        else:
            texts = [source.read_text(encoding="utf-8")]
        for text in texts:
            for match in CITE_RE.finditer(text):
                for key in match.group(1).split(","):
                    if key.strip():
                        keys.setdefault(key.strip(), []).append(entry.file)
    return keys


def _normalise(text: str) -> str:
    text = re.sub(r"[{}]", "", text).replace("\\&", "&")  # BibTeX escapes & as \&; the page shows &
    text = text.replace("--", "\u2013")
    return " ".join(text.split()).lower()


def test_bibliography_lists_cited_titles(book: Build) -> None:
    database = pytest.importorskip("pybtex.database")
    bib = database.parse_file(str(BIB))
    cited = _cited_keys()
    assert cited, "the book cites nothing"
    unknown = {k: v for k, v in cited.items() if k not in bib.entries}
    assert not unknown, f"cited keys missing from {BIB.name}: {unknown}"

    references = next(e for e in ENTRIES if e.file.removesuffix(".md") == BIBLIOGRAPHY_PAGE)
    text = _normalise(read_page(book, references).text)
    missing = [
        f"{key}: {bib.entries[key].fields['title']}"
        for key in sorted(cited)
        if _normalise(bib.entries[key].fields["title"]) not in text
    ]
    assert not missing, f"{references.page} does not list:\n" + "\n".join(missing)


def test_intro_links_to_first_chapter(book: Build) -> None:
    root = ENTRIES[0]
    chapter = first_chapter()
    root_path = book.html / root.page
    page = read_page(book, root)
    target = (book.html / chapter.page).resolve()
    linked = {local_target(root_path, href) for href in page.links}
    assert target in linked, (
        f"{root.page} does not link to the first chapter {chapter.page} in its body; "
        f"links: {sorted(set(page.links))}"
    )


def test_required_citations_present() -> None:
    """The introduction credits the original repository and the core papers."""
    cited = _cited_keys()
    required = {
        "levi2022backprop2",
        "finn2017maml",
        "nichol2018reptile",
        "li2017metasgd",
        "rajeswaran2019imaml",
        "andrychowicz2016l2l",
        "kirkpatrick2017ewc",
        "metz2019unsupervised",
        "antoniou2019mamlpp",
    }
    intro_keys = {k for k, files in cited.items() if ENTRIES[0].file in files}
    assert required <= intro_keys, f"the introduction does not cite {sorted(required - intro_keys)}"


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.file for e in ENTRIES])
def test_markdown_tables_are_rendered_as_tables(book: Build, entry: TocEntry) -> None:
    """Result tables printed as Markdown must become HTML tables, not raw pipes."""
    raw = (book.html / entry.page).read_text(encoding="utf-8")
    text = re.sub(r"<[^>]+>", " ", raw)
    assert not re.search(r"\|\s*-{3,}\s*\|", text), f"{entry.page} shows a Markdown table as raw text"
