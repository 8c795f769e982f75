"""Run many notebooks at once, one process per notebook, and keep what succeeded.

The parent plans slots (GPUs or CPU workers), starts ``backprop2lib.run.job`` for each
notebook from a small thread pool whose threads do nothing but wait on their
subprocess, and then -- in the main thread -- cleans, stamps and atomically writes
every notebook that ran to the end. A failed notebook leaves the committed file
untouched; its executed copy and log stay in the log folder for inspection.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import nbformat

import backprop2lib
from backprop2lib.profiles import resolve_profile

from .notebooks import Stamp, add_stamp, clean_notebook, compute_stamp, write_atomic
from .slots import Slot, available_cores, default_cpu_jobs, detect_gpu_ids, plan_slots

JOB_MODULE = "backprop2lib.run.job"  # a string, not an import: see ``python -m`` in job.py
DEFAULT_TIMEOUT = 3600  # seconds per cell; a hung cell must fail, not ship a page without outputs
DEFAULT_START_TIMEOUT = 180  # seconds for a kernel to start on a loaded CI machine
NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"
WRITES_IN_PLACE = ("paper", "full")  # the profiles whose outputs are committed


@dataclass
class JobResult:
    """What happened to one notebook (also one row of the report and of records.json)."""

    notebook: Path
    device: str
    status: str  # "ok" or "failed"
    wall_time_s: float
    retried: bool = False
    cell_index: int | None = None  # 0-based index of the failing cell in the notebook file
    error_name: str | None = None
    error_message: str | None = None
    written_to: Path | None = None
    log_path: Path | None = None
    stamp: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass
class _Job:
    notebook: Path
    destination: Path
    log_path: Path
    executed_path: Path
    result_path: Path
    input_sha256: str
    stamp: Stamp


def default_notebooks(root: Path) -> list[Path]:
    return sorted((Path(root) / "notebooks").glob(NOTEBOOK_GLOB))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class _Launcher:
    """Starts job processes on free slots; remembers them so Ctrl-C can stop them."""

    def __init__(self, slots: Sequence[Slot], profile: str, timeout: int, start_timeout: int):
        self.free: queue.Queue[Slot] = queue.Queue()
        for slot in slots:
            self.free.put(slot)
        self.profile, self.timeout, self.start_timeout = profile, timeout, start_timeout
        self.running: set[subprocess.Popen] = set()
        self.stopped = False  # after Ctrl-C, no thread may start another job
        self.lock = threading.Lock()

    def run(self, job: _Job) -> tuple[str, int, float]:
        """Runs in a pool thread: wait for a slot, run the job, give the slot back."""
        slot = self.free.get()
        try:
            env = {**os.environ, **slot.env, "BACKPROP2_PROFILE": self.profile, "BACKPROP2_PROGRESS": "0",
                   "PYTHONUNBUFFERED": "1"}
            command = [sys.executable, "-m", JOB_MODULE, "--input", str(job.notebook),
                       "--output", str(job.executed_path), "--result", str(job.result_path),
                       "--profile", self.profile, "--timeout", str(self.timeout),
                       "--start-timeout", str(self.start_timeout), "--device", slot.device]
            job.result_path.unlink(missing_ok=True)
            started = time.perf_counter()
            with open(job.log_path, "w", encoding="utf-8") as log:
                log.write(f"# {job.notebook} on {slot.device}, profile {self.profile}\n# slot env {dict(slot.env)}\n")
                log.flush()
                with self.lock:
                    if self.stopped:
                        return slot.device, -1, 0.0
                    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                               stdin=subprocess.DEVNULL)
                    self.running.add(process)
                try:
                    returncode = process.wait()
                finally:
                    with self.lock:
                        self.running.discard(process)
            return slot.device, returncode, time.perf_counter() - started
        finally:
            self.free.put(slot)

    def stop_all(self) -> None:
        with self.lock:
            self.stopped = True
            for process in self.running:
                process.terminate()


def _finish(job: _Job, device: str, returncode: int, wall: float, write_back: bool) -> JobResult:
    """Main thread: read the job's verdict; on success clean, stamp and write atomically."""
    result = JobResult(notebook=job.notebook, device=device, status="failed", wall_time_s=wall,
                       log_path=job.log_path, stamp=job.stamp.stamp)
    try:
        verdict = json.loads(job.result_path.read_text())
    except (OSError, ValueError):
        result.error_name = "JobCrashed"
        result.error_message = f"job process exited with code {returncode} without a result; see {job.log_path}"
        return result
    result.retried = bool(verdict.get("retried"))
    if verdict.get("status") != "ok":
        result.cell_index = verdict.get("cell_index")
        result.error_name = verdict.get("error_name")
        result.error_message = verdict.get("error_message")
        return result
    try:
        if write_back and _sha256(job.notebook) != job.input_sha256:
            # Someone edited the notebook while it ran: overwriting would lose the edit.
            result.error_name = "SourceChanged"
            result.error_message = f"notebook edited during the run; executed copy kept at {job.executed_path}"
            return result
        nb = nbformat.read(str(job.executed_path), as_version=4)
        clean_notebook(nb)
        add_stamp(nb, job.stamp, device=device, wall_time_s=wall)
        write_atomic(nb, job.destination)
    except Exception as error:  # noqa: BLE001 - report it like any other failure
        result.error_name, result.error_message = type(error).__name__, str(error)
        return result
    job.executed_path.unlink(missing_ok=True)
    result.status, result.written_to = "ok", job.destination
    return result


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()


def update_records(records_path: Path, results: Sequence[JobResult], profile: str, root: Path) -> list[dict]:
    """Merge this run into records.json: one record per (notebook, profile), latest wins,
    so a ``--stale`` run of two notebooks keeps the records of the others."""
    try:
        records = json.loads(records_path.read_text())
    except (OSError, ValueError):
        records = []
    date = datetime.now(timezone.utc).isoformat(timespec="seconds")
    fresh = {}
    for result in results:
        notebook = _relative(result.notebook, root)
        fresh[(notebook, profile)] = {
            "notebook": notebook, "profile": profile, "device": result.device, "status": result.status,
            "wall_time_s": round(result.wall_time_s, 1), "library_version": backprop2lib.__version__,
            "date": date, "stamp": result.stamp, "retried": result.retried, "cell_index": result.cell_index,
            "error_name": result.error_name, "error_message": result.error_message,
        }
    kept = [r for r in records if isinstance(r, dict) and (r.get("notebook"), r.get("profile")) not in fresh]
    merged = sorted(kept + list(fresh.values()), key=lambda r: (str(r.get("notebook")), str(r.get("profile"))))
    records_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = records_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(merged, indent=1) + "\n")
    os.replace(tmp, records_path)
    return merged


def _progress_line(result: JobResult) -> str:
    line = f"{result.status.upper():6} {result.notebook.name}  [{result.device}, {result.wall_time_s:.1f}s]"
    if result.retried:
        line += " (retried after a dead kernel)"
    if not result.ok:
        where = f"cell {result.cell_index}: " if result.cell_index is not None else ""
        message = _truncate(result.error_message or "", 200)
        line += f"\n       {where}{result.error_name}: {message}\n       log: {result.log_path}"
    return line


def _truncate(text: str, width: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 3] + "..."


def format_table(results: Sequence[JobResult], error_width: int = 60) -> str:
    """The final report: notebook, device, status, wall time, failing cell and error."""
    header = ("notebook", "device", "status", "wall (s)", "cell", "error")
    rows = [
        (r.notebook.name, r.device, r.status + (" (retried)" if r.retried else ""), f"{r.wall_time_s:.1f}",
         "" if r.cell_index is None else str(r.cell_index),
         "" if r.ok else _truncate(f"{r.error_name}: {r.error_message or ''}", error_width))
        for r in results
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def run_notebooks(
    notebooks: Sequence[str | Path],
    *,
    profile: str | None = None,
    jobs: int | None = None,
    jobs_per_gpu: int = 1,
    timeout: int = DEFAULT_TIMEOUT,
    start_timeout: int = DEFAULT_START_TIMEOUT,
    root: str | Path | None = None,
    output_dir: str | Path | None = None,
    log_dir: str | Path | None = None,
    records_path: str | Path | None = None,
    gpu_ids: Sequence[str] | None = None,
    cores: int | None = None,
    threads_per_job: int | None = None,
    package_root: str | Path | None = None,
    progress: bool = True,
) -> list[JobResult]:
    """Execute ``notebooks`` in parallel with papermill; return one result each, in order.

    ``paper``/``full`` write each successful notebook back in place (or into
    ``output_dir`` if given); ``smoke`` writes into ``output_dir`` (default
    ``<root>/_build/smoke``) and never touches the notebooks. ``gpu_ids``/``cores``
    override detection (tests, or pinning a run by hand); ``threads_per_job``
    overrides the BLAS/OpenMP threads each job gets (default: cores // slots).
    """
    profile_name = resolve_profile(profile).name  # ValueError names the valid profiles
    root = Path(root or Path.cwd()).resolve()
    paths = [Path(p).resolve() for p in notebooks]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"notebook(s) not found: {', '.join(missing)}")
    stems = [p.stem for p in paths]
    duplicates = sorted({s for s in stems if stems.count(s) > 1})
    if duplicates:  # logs and scratch copies are named by stem
        raise ValueError(f"notebooks with the same name in one run: {duplicates}")
    if timeout < 1 or start_timeout < 1:
        raise ValueError("timeout and start_timeout must be at least 1 second")
    if not paths:
        return []

    write_back = profile_name in WRITES_IN_PLACE and output_dir is None
    if output_dir is None and not write_back:
        output_dir = root / "_build" / "smoke"
    log_dir = Path(log_dir or root / "_build" / "runner" / "logs").resolve()
    log_dir.mkdir(parents=True, exist_ok=True)
    records_path = Path(records_path or root / "_build" / "runner" / "records.json")

    gpu_ids = detect_gpu_ids() if gpu_ids is None else list(gpu_ids)
    cores = cores or available_cores()
    cpu_jobs = jobs if jobs is not None else default_cpu_jobs(len(paths), cores)
    slots = plan_slots(len(gpu_ids), jobs_per_gpu, cpu_jobs, cores, gpu_ids=gpu_ids, threads_per_job=threads_per_job)

    planned: list[_Job] = []
    for path in paths:
        nb = nbformat.read(str(path), as_version=4)
        planned.append(_Job(
            notebook=path,
            destination=path if write_back else Path(output_dir).resolve() / path.name,
            log_path=log_dir / f"{path.stem}.log",
            executed_path=log_dir / f"{path.stem}.executed.ipynb",
            result_path=log_dir / f"{path.stem}.result.json",
            input_sha256=_sha256(path),
            # Stamp what is about to run, not what the sources are when it finishes.
            stamp=compute_stamp(nb, profile_name, Path(package_root) if package_root else None),
        ))

    from tqdm import tqdm

    launcher = _Launcher(slots, profile_name, int(timeout), int(start_timeout))
    devices = sorted({slot.device for slot in slots})
    results: dict[Path, JobResult] = {}
    bar = tqdm(total=len(planned), desc=f"{profile_name}: {len(slots)} slot(s) on {', '.join(devices)}",
               unit="nb", disable=not progress, file=sys.stderr)
    pool = ThreadPoolExecutor(max_workers=min(len(slots), len(planned)), thread_name_prefix="notebook-job")
    try:
        futures = {pool.submit(launcher.run, job): job for job in planned}
        for future in as_completed(futures):
            job = futures[future]
            try:
                device, returncode, wall = future.result()
                result = _finish(job, device, returncode, wall, write_back)
            except Exception as error:  # noqa: BLE001 - e.g. the log folder vanished
                result = JobResult(notebook=job.notebook, device="?", status="failed", wall_time_s=0.0,
                                   error_name=type(error).__name__, error_message=str(error), log_path=job.log_path)
            results[job.notebook] = result
            bar.update(1)
            if progress:
                bar.write(_progress_line(result), file=sys.stderr)
    except KeyboardInterrupt:
        launcher.stop_all()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
    ordered = [results[path] for path in paths]
    update_records(records_path, ordered, profile_name, root)
    return ordered

