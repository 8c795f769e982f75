"""One notebook job: ``python -m backprop2lib.run.job``, in its own process.

The runner starts one of these per notebook, with the slot's environment, its
stdout/stderr going to the notebook's log file. papermill runs here and nowhere
else: its working-directory handling is process-global, so it is not safe in threads.

The job executes the notebook into ``--output`` (a scratch copy, never the committed
notebook), retries once if the kernel died, and writes a JSON result for the parent.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import nbformat

from .notebooks import ERROR_MARKER_TAG, INJECTED_TAG

MAX_ATTEMPTS = 2  # a dead kernel (OOM killer, segfault in a native lib) gets one retry


def _is_dead_kernel(error: BaseException) -> bool:
    from nbclient.exceptions import DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    if isinstance(error, DeadKernelError):
        return True
    if isinstance(error, PapermillExecutionError):
        return "DeadKernel" in (error.ename or "")
    # jupyter_client reports a kernel that dies while starting as a plain RuntimeError.
    return isinstance(error, RuntimeError) and "kernel died" in str(error).lower()


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def source_cell_index(input_nb, executed_nb, executed_index: int) -> int:
    """Map a cell index in papermill's output back to the notebook file.

    papermill may have inserted an injected-parameters cell (and, on error, marker
    cells), so count the cells that both notebooks share up to the failing one.
    """
    shared_before = sum(
        1
        for cell in executed_nb.cells[:executed_index]
        if INJECTED_TAG not in _tags(cell) and ERROR_MARKER_TAG not in _tags(cell)
    )
    seen = 0
    for index, cell in enumerate(input_nb.cells):
        if INJECTED_TAG in _tags(cell):
            continue
        if seen == shared_before:
            return index
        seen += 1
    return executed_index


def _last_started_cell(output: Path) -> int | None:
    """The cell that was running when execution stopped (timeouts, dead kernels):
    papermill saves after every cell, with a start time on each cell it began."""
    try:
        nb = nbformat.read(str(output), as_version=4)
    except (OSError, ValueError):
        return None
    started = [i for i, cell in enumerate(nb.cells) if cell.metadata.get("papermill", {}).get("start_time")]
    return started[-1] if started else None


def _read_without_markers(output: Path):
    # On an error papermill inserts marker cells before saving, but reports the cell
    # index from before the insertion: read the output back as it was then.
    try:
        nb = nbformat.read(str(output), as_version=4)
    except (OSError, ValueError):
        return None
    nb.cells = [cell for cell in nb.cells if ERROR_MARKER_TAG not in _tags(cell)]
    return nb


def _failure(error: BaseException, input_nb, output: Path) -> dict:
    from papermill.exceptions import PapermillExecutionError

    if isinstance(error, PapermillExecutionError):
        executed_index, name, message = error.cell_index, error.ename, error.evalue
    else:
        executed_index, name, message = _last_started_cell(output), type(error).__name__, str(error)
    executed = _read_without_markers(output)
    cell = None
    if executed_index is not None and executed is not None:
        cell = source_cell_index(input_nb, executed, executed_index)
    return {"cell_index": cell, "error_name": name, "error_message": message}


def run_job(
    input_path: Path,
    output_path: Path,
    profile: str,
    timeout: int,
    start_timeout: int,
    device: str,
) -> dict:
    """Execute the notebook; never raises for notebook problems, returns the result."""
    import papermill

    input_nb = nbformat.read(str(input_path), as_version=4)
    started = time.perf_counter()
    result = {"status": "failed", "device": device, "retried": False, "attempts": 0,
              "cell_index": None, "error_name": None, "error_message": None}
    for attempt in range(1, MAX_ATTEMPTS + 1):
        result["attempts"] = attempt
        output_path.unlink(missing_ok=True)
        try:
            papermill.execute_notebook(
                str(input_path),
                str(output_path),
                parameters={"profile": profile},
                kernel_name="python3",
                language="python",  # the book is Python; spares notebooks without kernelspec metadata
                execution_timeout=timeout,
                start_timeout=start_timeout,
                cwd=str(input_path.parent),  # relative paths in a notebook mean "next to me"
                progress_bar=False,
                log_output=True,
            )
        except Exception as error:  # noqa: BLE001 - every failure becomes a result
            logging.getLogger("backprop2lib.run.job").exception("attempt %d failed", attempt)
            result.update(_failure(error, input_nb, output_path))
            if _is_dead_kernel(error) and attempt < MAX_ATTEMPTS:
                result["retried"] = True
                print(f"[backprop2 runner] kernel died; retrying once ({input_path.name})", file=sys.stderr, flush=True)
                continue
            break
        else:
            result.update(status="ok", cell_index=None, error_name=None, error_message=None)
            break
    result["wall_time_s"] = time.perf_counter() - started
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backprop2lib.run.job", description=__doc__)
    parser.add_argument("--input", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True, help="scratch path for the executed notebook")
    parser.add_argument("--result", type=Path, required=True, help="where to write the JSON result")
    parser.add_argument("--profile", required=True)
    parser.add_argument("--timeout", type=int, required=True, help="per-cell execution timeout (s)")
    parser.add_argument("--start-timeout", type=int, required=True, help="kernel start timeout (s)")
    parser.add_argument("--device", default="cpu", help="slot label, echoed into the result")
    args = parser.parse_args(argv)

    # papermill logs each cell's output (log_output=True) through logging: send it to
    # stderr, which the runner points at this notebook's log file.
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from .cluster import exit_with_parent

    exit_with_parent()  # on a Dask worker: stop if the worker dies under us
    started = time.perf_counter()
    try:
        result = run_job(args.input.resolve(), args.output.resolve(), args.profile, args.timeout,
                         args.start_timeout, args.device)
    except Exception as error:  # noqa: BLE001 - e.g. an unreadable notebook: still report it
        logging.getLogger("backprop2lib.run.job").exception("job failed before execution")
        result = {"status": "failed", "device": args.device, "retried": False, "attempts": 0, "cell_index": None,
                  "error_name": type(error).__name__, "error_message": str(error),
                  "wall_time_s": time.perf_counter() - started}
    tmp = args.result.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, args.result)  # the parent never reads half a result
    return 0 if result["status"] == "ok" else 1


if __name__ == "__main__":
    raise SystemExit(main())
