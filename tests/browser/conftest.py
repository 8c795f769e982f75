"""Shared fixtures for the browser tests: Debian's chromium driven by Playwright (sync API).

* ``chromium_path`` (session): ``$BACKPROP2_CHROMIUM``, else ``chromium`` on ``PATH``; the
  tests are skipped when there is none, or when the ``playwright`` package is missing, except
  under the test command (``BACKPROP2_REQUIRE_BROWSER=1``), where either is a failure. A browser
  is never downloaded (no ``playwright install``).
* ``browser`` (session): one headless chromium for the whole session.
* ``new_page`` (function): a factory, ``new_page(**context_options) -> Page``; each page gets its
  own browser context (1280x900 by default) in which every request to a host other than
  127.0.0.1 / localhost is aborted, so the offline machine never waits on a CDN. The aborted
  URLs are kept in ``page.blocked_requests`` (a list). Pages and contexts are closed at teardown.
* ``static_server`` (session): a factory, ``static_server(directory) -> base URL`` ending in
  ``/``; serves the directory over HTTP on 127.0.0.1 and a free port from a thread, and shuts
  every server it started down at the end of the session.
"""

from __future__ import annotations

import functools
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ENV_CHROMIUM = "BACKPROP2_CHROMIUM"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
DEFAULT_VIEWPORT = {"width": 1280, "height": 900}
DEFAULT_TIMEOUT_MS = 15_000


def is_local_url(url: str) -> bool:
    """True for URLs the tests may load: 127.0.0.1 / localhost, data: and blob: URLs."""
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about"):
        return True
    return parts.hostname in LOCAL_HOSTS


@pytest.fixture(scope="session")
def chromium_path() -> str:
    configured = os.environ.get(ENV_CHROMIUM)
    if configured:
        path = shutil.which(configured) or configured
        if not Path(path).is_file():
            pytest.fail(f"{ENV_CHROMIUM}={configured} is not an executable")
        return path
    path = shutil.which("chromium")
    if path is None:
        message = f"no chromium on PATH (install Debian's chromium or set {ENV_CHROMIUM})"
        if os.environ.get("BACKPROP2_REQUIRE_BROWSER") == "1":  # the test command: a missing browser is a failure
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def browser(chromium_path: str) -> Iterator:
    if os.environ.get("BACKPROP2_REQUIRE_BROWSER") == "1":
        import playwright.sync_api as sync_api
    else:
        sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (dev dependency) is not installed")
    playwright = sync_api.sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
    finally:
        playwright.stop()


@pytest.fixture
def new_page(browser) -> Iterator[Callable[..., object]]:
    contexts = []

    def make(**context_options):
        context_options.setdefault("viewport", DEFAULT_VIEWPORT)
        context = browser.new_context(**context_options)
        contexts.append(context)
        context.set_default_timeout(DEFAULT_TIMEOUT_MS)
        blocked: list[str] = []

        def only_local(route) -> None:
            url = route.request.url
            if is_local_url(url):
                route.continue_()
            else:
                blocked.append(url)
                route.abort()

        context.route("**/*", only_local)
        page = context.new_page()
        page.blocked_requests = blocked
        return page

    yield make
    for context in contexts:
        try:
            context.close()
        except Exception:  # the browser may already be gone after a crash; nothing to clean
            pass


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base class's name)
        pass


@pytest.fixture(scope="session")
def static_server() -> Iterator[Callable[[Path], str]]:
    servers: list[tuple[ThreadingHTTPServer, threading.Thread]] = []

    def serve(directory: Path) -> str:
        handler = functools.partial(_QuietHandler, directory=str(directory))
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)  # port 0: a free port
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, name=f"static:{directory}", daemon=True)
        thread.start()
        servers.append((server, thread))
        host, port = server.server_address[:2]
        return f"http://{host}:{port}/"

    yield serve
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
