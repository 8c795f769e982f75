"""The parallel notebook runner: ``python -m backprop2lib.run``.

* ``slots``     - where jobs run (one GPU each, or CPU workers) and their environment
* ``job``       - one notebook executed by papermill in its own process (retries a dead kernel)
* ``notebooks`` - cleaning executed notebooks for git, stamps, stale checks, atomic writes
* ``runner``    - the pool that runs jobs, writes results back and reports
"""

from __future__ import annotations

from .notebooks import (
    PACKAGE_ROOT,
    Stamp,
    add_stamp,
    clean_notebook,
    compute_stamp,
    is_stale,
    library_modules,
    read_stamp,
    stale_notebooks,
    write_atomic,
)
from .runner import JobResult, default_notebooks, format_table, run_notebooks
from .slots import Slot, available_cores, detect_gpu_ids, plan_slots


def main(argv: list[str] | None = None) -> int:
    """Console entry point (``backprop2-run``). Imported lazily: importing
    ``backprop2lib.run.__main__`` here would make ``python -m backprop2lib.run`` warn."""
    from .__main__ import main as cli_main

    return cli_main(argv)


__all__ = [
    "PACKAGE_ROOT",
    "JobResult",
    "Slot",
    "Stamp",
    "add_stamp",
    "available_cores",
    "clean_notebook",
    "compute_stamp",
    "default_notebooks",
    "detect_gpu_ids",
    "format_table",
    "is_stale",
    "library_modules",
    "main",
    "plan_slots",
    "read_stamp",
    "run_notebooks",
    "stale_notebooks",
    "write_atomic",
]
