"""The rendered book in a real browser: the front page and every page of ``_toc.yml``.

The book is the session's build (``built_book`` in tests/conftest.py: built once, or the one
named by ``BACKPROP2_BOOK_HTML``), served over HTTP from 127.0.0.1 and opened in Debian's
chromium through Playwright (fixtures in tests/browser/conftest.py). Every request to another
host is aborted, so MathJax (a CDN script on the public site) never loads here: the math is
checked as the TeX source the page carries, not as rendered formulas.

For the front page (``index.html``) and every toc entry (chapters = entries whose source is a
notebook; a chapter added to ``_toc.yml`` is picked up without edits here) it checks

* the front page redirects to the root page;
* the HTML title holds the page's own heading and the book title;
* the primary sidebar is visible, links to every toc page, marks this page as current under its
  heading, and every local link in it resolves (HTTP 200);
* every ``<img>`` in the article loaded (``naturalWidth > 0``); chapters have at least one figure;
* no traceback or error output is shown (no "Traceback (most recent call last)", no
  ``.output.traceback`` / ``.output.error``, no stderr output naming an ``...Error``), no
  JavaScript error, and every local request (theme CSS, JS, images) succeeded;
* chapters show code cells (``.cell_input`` with highlighted code) and outputs (``.cell_output``),
  and the claim verdict lines (``<claim>: True``) are visible, none ``False``;
* pages whose source has ``$...$`` math carry it: ``.math`` containers with the TeX text of the
  source (or MathJax's rendering of them, should MathJax ever be served locally);

and saves a full-page screenshot of each page to
``_build/test-artifacts/screenshots/<page path with / as __>.png`` (e.g. ``book__intro.png``;
``index.png`` for the front page), checked to be a real PNG of more than 10 kB. The "next" links
are followed from the root through every toc page in order (the root reaches chapter 1).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urldefrag, urljoin

import pytest

from bookbuild import REPO, Build, TocEntry, book_title, chapter_entries, toc_entries

pytestmark = pytest.mark.slow

SCREENSHOTS = REPO / "_build" / "test-artifacts" / "screenshots"
MIN_SCREENSHOT_BYTES = 10_000
TRACEBACK_TEXT = "Traceback (most recent call last)"
ERROR_NAME_RE = re.compile(r"\w*Error\b")
VERDICT_RE = re.compile(r"^(?P<claim>\S.*): (?P<verdict>True|False)$")
# Inline math in markdown: $...$ (not $$), on one line.
INLINE_MATH_RE = re.compile(r"(?<![\\$])\$(?!\$)([^$\n]+?)(?<![\\\s])\$(?!\$)")
CODE_RE = re.compile(r"```.*?```|~~~.*?~~~|`[^`\n]*`", re.S)
# JavaScript errors every page of a Jupyter Book 1 build raises, harmless: sphinx-thebe's inline
# config script (`const THEBE_JS_URL = ...`) is emitted twice into each page's <head> (thebe is
# off here, launch_buttons.thebe: false), so the second copy is a redeclaration SyntaxError.
KNOWN_JS_ERRORS = ("Identifier 'THEBE_JS_URL' has already been declared",)

ENTRIES = toc_entries()
CHAPTERS = chapter_entries(ENTRIES)
ROOT = ENTRIES[0]
TITLE = book_title()

# Every <img> of the article: force eager loading, wait for each to load (or fail), and report
# what the browser got. decode() resolves once the image is loaded and decoded.
IMAGES_JS = """async () => {
    const images = Array.from(document.querySelectorAll('article img'));
    await Promise.all(images.map(img => { img.loading = 'eager'; return img.decode().catch(() => null); }));
    return images.map(img => ({src: img.getAttribute('src'), url: img.currentSrc || img.src,
                               complete: img.complete, naturalWidth: img.naturalWidth}));
}"""
HEADING_JS = """() => {
    const h1 = document.querySelector('article h1');
    if (!h1) return null;
    const copy = h1.cloneNode(true);
    copy.querySelectorAll('.headerlink').forEach(e => e.remove());
    return copy.textContent;
}"""
SIDEBAR_JS = """() => Array.from(document.querySelectorAll('nav.bd-docs-nav a[href]')).map(a => ({
    href: a.href, text: a.textContent, current: a.classList.contains('current')}))"""
MATH_JS = """() => ({
    tex: Array.from(document.querySelectorAll('article .math')).map(e => e.textContent),
    rendered: document.querySelectorAll('article mjx-container').length})"""


def squash(text: str | None) -> str:
    return " ".join((text or "").split())


def screenshot_path(page_path: str) -> Path:
    return SCREENSHOTS / (page_path.removesuffix(".html").replace("/", "__") + ".png")


def source_markdown(entry: TocEntry) -> str:
    """The markdown text of a page's source, code removed (notebooks: their markdown cells)."""
    source = entry.source
    if source.suffix == ".ipynb":
        cells = json.loads(source.read_text(encoding="utf-8")).get("cells", [])
        text = "\n\n".join(
            "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            for c in cells
            if c.get("cell_type") == "markdown"
        )
    else:
        text = source.read_text(encoding="utf-8")
    return CODE_RE.sub(" ", text)


def source_inline_math(entry: TocEntry) -> list[str]:
    return [squash(m) for m in INLINE_MATH_RE.findall(source_markdown(entry))]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def book_url(built_book: Build, static_server) -> str:
    # A build that exits non-zero (warnings are errors) is reported by tests/test_book.py;
    # whatever it rendered is still checked here.
    assert (built_book.html / "index.html").is_file(), (
        f"no book to open: {built_book.html} has no index.html (exit {built_book.returncode})"
    )
    return static_server(built_book.html)


@pytest.fixture(scope="module")
def link_status(book_url: str, browser):
    """HTTP status of a local URL (fetched once per URL)."""
    cache: dict[str, int] = {}
    context = browser.new_context()
    request = context.request

    def status(url: str) -> int:
        if url not in cache:
            cache[url] = request.get(url, timeout=10_000).status
        return cache[url]

    yield status
    context.close()


class Visit:
    """One page opened in the browser, with what went wrong while it loaded."""

    def __init__(self, page, base: str) -> None:
        self.page = page
        self.base = base
        self.page_errors: list[str] = []
        self.local_failures: list[str] = []
        page.on(
            "pageerror",
            lambda error: None if str(error) in KNOWN_JS_ERRORS else self.page_errors.append(str(error)),
        )
        page.on(
            "requestfailed",
            lambda request: self.local_failures.append(f"{request.url} ({request.failure})")
            if request.url.startswith(base)
            else None,
        )
        page.on(
            "response",
            lambda response: self.local_failures.append(f"{response.url} (HTTP {response.status})")
            if response.url.startswith(base) and response.status >= 400
            else None,
        )

    def open(self, page_path: str) -> None:
        self.page.goto(urljoin(self.base, page_path), wait_until="load")
        self.images = self.page.evaluate(IMAGES_JS)

    def screenshot(self, page_path: str) -> Path:
        path = screenshot_path(page_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def visit(new_page, book_url: str) -> Visit:
    return Visit(new_page(), book_url)


def assert_screenshot(path: Path) -> None:
    assert path.is_file(), f"no screenshot at {path}"
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n"), f"{path} is not a PNG"
    assert len(data) > MIN_SCREENSHOT_BYTES, f"{path} is only {len(data)} bytes: a blank page?"


def assert_no_error_output(visit: Visit, label: str) -> None:
    page = visit.page
    body = page.inner_text("body")
    assert TRACEBACK_TEXT not in body, f"{label} shows a Python traceback"
    errors = page.locator(".output.traceback, .output.error")
    assert errors.count() == 0, f"{label} shows error output: {squash(errors.first.inner_text())[:300]}"
    stderr = [squash(t) for t in page.locator(".output.stderr").all_inner_texts()]
    bad = [t[:300] for t in stderr if ERROR_NAME_RE.search(t)]
    assert not bad, f"{label} shows stderr output with an error: {bad}"
    assert not visit.page_errors, f"{label}: JavaScript errors: {visit.page_errors}"
    assert not visit.local_failures, f"{label}: local requests failed (styles/scripts/images): {visit.local_failures}"


# --------------------------------------------------------------------------- tests


def test_front_page(visit: Visit) -> None:
    """index.html redirects to the root page, which shows the book title and its styles."""
    visit.page.goto(urljoin(visit.base, "index.html"), wait_until="commit")
    visit.page.wait_for_url(urljoin(visit.base, ROOT.page) + "*")
    visit.page.wait_for_load_state("load")
    visit.images = visit.page.evaluate(IMAGES_JS)
    shot = visit.screenshot("index.html")
    assert squash(TITLE) in squash(visit.page.title())
    assert visit.page.locator("nav.bd-docs-nav").is_visible(), "the front page has no visible sidebar"
    assert visit.page.locator("article h1").first.is_visible()
    assert_no_error_output(visit, "index.html")
    assert_screenshot(shot)


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.file for e in ENTRIES])
def test_page(visit: Visit, link_status, entry: TocEntry) -> None:
    page = visit.page
    visit.open(entry.page)
    shot = visit.screenshot(entry.page)  # first, so a failing page still leaves its picture
    label = entry.page

    # title: the page's own heading and the book's title
    heading = squash(page.evaluate(HEADING_JS))
    assert heading, f"{label} has no <h1> in its article"
    title = squash(page.title())
    assert heading in title, f"{label}: title {title!r} does not hold the heading {heading!r}"
    assert squash(TITLE) in title, f"{label}: title {title!r} does not hold the book title {TITLE!r}"

    # navigation: a visible sidebar listing every toc page, this one current; links resolve
    assert page.locator("nav.bd-docs-nav").is_visible(), f"{label}: the sidebar navigation is not visible"
    links = page.evaluate(SIDEBAR_JS)
    targets = {urldefrag(link["href"]).url for link in links}
    expected = {urljoin(visit.base, e.page) for e in ENTRIES}
    missing = sorted(expected - targets)
    assert not missing, f"{label}: the sidebar does not link to {missing}"
    here = urljoin(visit.base, entry.page)
    # this page's entry: marked "current" (the root's own entry is just a "#" link on it)
    current = [squash(link["text"]) for link in links if link["current"] or urldefrag(link["href"]).url == here]
    assert heading in current, f"{label}: the sidebar's current entry {current} is not {heading!r}"
    broken = sorted({t for t in targets if t.startswith(visit.base) and link_status(t) != 200})
    assert not broken, f"{label}: sidebar links that do not resolve: {broken}"

    # figures: every image loaded
    not_loaded = [img["src"] for img in visit.images if not img["naturalWidth"]]
    assert not not_loaded, f"{label}: images that did not load: {not_loaded}"

    assert_no_error_output(visit, label)

    # math: the TeX of the source is on the page (MathJax itself is blocked offline)
    snippets = source_inline_math(entry)
    if snippets:
        math = page.evaluate(MATH_JS)
        if not math["rendered"]:
            assert math["tex"], f"{label}: the source has $...$ math but the page has no .math element"
            tex = " ".join(squash(t) for t in math["tex"])
            assert "\\(" in tex, f"{label}: the .math elements hold no inline TeX: {tex[:200]}"
            found = [s for s in snippets if s in tex]
            assert found, f"{label}: none of the source's math {snippets[:5]} is on the page"

    if entry.is_notebook:
        check_chapter(visit, label)

    assert_screenshot(shot)


def check_chapter(visit: Visit, label: str) -> None:
    page = visit.page
    inputs = page.locator("article .cell_input div.highlight")
    assert inputs.count() > 0, f"{label}: no code cell (.cell_input with highlighted code)"
    assert inputs.first.is_visible(), f"{label}: the code cells are hidden"
    outputs = page.locator("article .cell_output")
    assert outputs.count() > 0, f"{label}: no cell output (.cell_output)"
    figures = [img for img in visit.images if img["naturalWidth"]]
    assert figures, f"{label}: no figure in the article (were the notebook's outputs committed?)"

    verdicts = []
    for i in range(outputs.count()):
        output = outputs.nth(i)
        lines = [VERDICT_RE.match(line.strip()) for line in output.inner_text().splitlines()]
        lines = [m for m in lines if m]
        if lines:
            assert output.is_visible(), f"{label}: the claim verdicts {lines[0].group(0)!r}... are hidden"
            verdicts += lines
    assert verdicts, f"{label}: no claim verdict line ('<claim>: True') in the outputs"
    false = [m.group(0) for m in verdicts if m["verdict"] != "True"]
    assert not false, f"{label}: claims that do not hold: {false}"
    first = verdicts[0].group(0)
    assert page.get_by_text(first, exact=False).first.is_visible(), f"{label}: {first!r} is not visible"


def test_next_links_walk_the_toc(visit: Visit) -> None:
    """From the root, the "next" link leads through every toc page in order (so to chapter 1)."""
    page = visit.page
    visit.open(ROOT.page)
    visited = [ROOT.file]
    for entry in ENTRIES[1:]:
        nxt = page.locator("a.right-next")
        assert nxt.count() == 1, f"no 'next' link on the page after {visited[-1]} (walked: {visited})"
        nxt.click()
        page.wait_for_url(urljoin(visit.base, entry.page) + "*")
        heading = squash(page.evaluate(HEADING_JS))
        assert heading, f"{entry.page} (reached by 'next') has no heading"
        visited.append(entry.file)
    if CHAPTERS:
        assert CHAPTERS[0].file in visited
