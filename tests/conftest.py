import os

import pytest
import torch

from bookbuild import Build, build_book, reuse_from_env

# Library tests never draw progress bars.
os.environ.setdefault("BACKPROP2_PROGRESS", "0")
# The test models are tiny: one thread is as fast, and immune to OpenMP stalls on shared cores.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def built_book(tmp_path_factory: pytest.TempPathFactory) -> Build:
    """The rendered book, built ONCE per test session and shared by every test that reads it
    (tests/test_book.py, tests/browser/test_book_pages.py).

    ``.html`` is the ``_build/html`` directory, ``.log`` the build's console output,
    ``.returncode`` its exit status. With ``BACKPROP2_BOOK_HTML`` set, that existing build is
    used instead (``.returncode`` None; ``.log`` read from ``BACKPROP2_BOOK_LOG`` if set, else None).
    A failed build is returned, not raised: test_book.py reports its exit status and log.
    """
    existing = reuse_from_env()
    if existing is not None:
        return existing
    pytest.importorskip("jupyter_book", reason="jupyter-book (dev dependency) is not installed")
    return build_book(tmp_path_factory.mktemp("book"))
