"""Run many notebooks at once, one process per notebook, and keep what succeeded.

The parent plans slots (GPUs or CPU workers), starts ``backprop2lib.run.job`` for each
notebook from a small thread pool whose threads do nothing but wait on their
subprocess, and then -- in the main thread -- cleans, stamps and atomically writes
every notebook that ran to the end. A failed notebook leaves the committed file
untouched; its executed copy and log stay in the log folder for inspection.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import datetime, timezone
from pathlib import Path

import nbformat

import backprop2lib
from backprop2lib.profiles import resolve_profile

from .notebooks import compute_stamp, read_stamp
from .slots import Slot, available_cores, default_cpu_jobs, detect_gpu_ids, plan_slots, thread_env
from .tasks import JobResult, NotebookJob, TrainedModelJob, file_sha256, python_command

_Job = NotebookJob  # the name the tests and older callers use

DEFAULT_TIMEOUT = 3600  # seconds per cell; a hung cell must fail, not ship a page without outputs
DEFAULT_START_TIMEOUT = 180  # seconds for a kernel to start on a loaded CI machine
NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"
WRITES_IN_PLACE = ("paper", "full")  # the profiles whose outputs are committed


def default_notebooks(root: Path) -> list[Path]:
    return sorted((Path(root) / "notebooks").glob(NOTEBOOK_GLOB))


class _Launcher:
    """Starts job processes on free slots; remembers them so Ctrl-C can stop them.

    Threads are sized when a job starts, from the cores then free: a job that starts while others
    wait gets its share, and the last ones get what the finished jobs left (``threads_per_job``
    fixes it instead)."""

    def __init__(self, slots: Sequence[Slot], profile: str, timeout: int, start_timeout: int, *,
                 cores: int, waiting: int, threads_per_job: int | None = None):
        self.free: queue.Queue[Slot] = queue.Queue()
        for slot in slots:
            self.free.put(slot)
        self.profile, self.timeout, self.start_timeout = profile, timeout, start_timeout
        self.cores, self.cores_busy, self.waiting, self.fixed_threads = cores, 0, waiting, threads_per_job
        self.running: set[subprocess.Popen] = set()
        self.stopped = False  # after Ctrl-C, no thread may start another job
        self.lock = threading.Lock()

    def _take_threads(self) -> int:
        with self.lock:
            waiting, self.waiting = self.waiting, self.waiting - 1
            share = max(1, (self.cores - self.cores_busy) // max(1, min(self.free.qsize() + 1, waiting)))
            threads = self.fixed_threads or share
            self.cores_busy += threads
            return threads

    def run(self, job) -> tuple[str, int, float]:
        """Runs in a pool thread: wait for a slot, run the job, give the slot back."""
        slot = self.free.get()
        threads = self._take_threads()
        try:
            env = {**os.environ, **slot.env, **thread_env(threads), **job.local_env(), "BACKPROP2_PROFILE": self.profile,
                   "BACKPROP2_PROGRESS": "0", "PYTHONUNBUFFERED": "1"}
            command = python_command(job.module, job.local_args(self.profile, self.timeout, self.start_timeout,
                                                                slot.device))
            job.prepare()
            started = time.perf_counter()
            with open(job.log_path, "w", encoding="utf-8") as log:
                log.write(f"# {job.name} on {slot.device} ({threads} thread(s)), profile {self.profile}\n"
                          f"# slot env {dict(slot.env)}\n")
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
            with self.lock:
                self.cores_busy -= threads
            self.free.put(slot)

    def stop_all(self) -> None:
        with self.lock:
            self.stopped = True
            for process in self.running:
                process.terminate()


def _finish(job: NotebookJob, device: str, returncode: int, wall: float, write_back: bool) -> JobResult:
    """Main thread: read the job's verdict; on success clean, stamp and write atomically."""
    return job.finish(device, returncode, wall, write_back)


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()


def update_records(records_path: Path, results: Sequence[JobResult], profile: str, root: Path) -> list[dict]:
    """Merge this run into records.json: one record per (notebook, profile), latest wins,
    so a ``--stale`` run of two notebooks keeps the records of the others."""
    records = _read_records(records_path)
    date = datetime.now(timezone.utc).isoformat(timespec="seconds")
    fresh = {}
    for result in results:
        notebook = _relative(result.notebook, root)
        fresh[(notebook, profile)] = {
            "notebook": notebook, "profile": profile, "device": result.device, "status": result.status,
            "wall_time_s": round(result.wall_time_s, 1), "library_version": backprop2lib.__version__,
            "date": date, "stamp": result.stamp, "retried": result.retried, "cell_index": result.cell_index,
            "error_name": result.error_name, "error_message": result.error_message, "kind": result.kind,
            "retry_reason": result.retry_reason,
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
        line += f" (retried after a {result.retry_reason or 'dead kernel'})"
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
        (r.notebook.name, r.device,
         r.status + (f" (retried: {r.retry_reason or 'dead kernel'})" if r.retried else ""), f"{r.wall_time_s:.1f}",
         "" if r.cell_index is None else str(r.cell_index),
         "" if r.ok else _truncate(f"{r.error_name}: {r.error_message or ''}", error_width))
        for r in results
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def estimate_seconds(path: Path, profile: str, records: Sequence[dict], root: Path) -> float | None:
    """How long ``path`` took last time in ``profile``: its latest successful record, else the wall time
    in its own stamp when that stamp is of this profile; None when never measured."""
    name = _relative(path, root)
    for record in records:
        if record.get("notebook") == name and record.get("profile") == profile and record.get("status") == "ok":
            return float(record["wall_time_s"])
    try:
        stamp = read_stamp(nbformat.read(str(path), as_version=4))
    except (OSError, ValueError):
        return None
    if stamp and stamp.get("profile") == profile and stamp.get("wall_time_s") is not None:
        return float(stamp["wall_time_s"])
    return None


def longest_first(jobs: Sequence, *, unknown_first: bool = True) -> list:
    """The jobs in the order to start them: longest estimate first (a long job started last runs alone at
    the end while the other slots idle); never-measured jobs first, since they may be the longest.
    Python's sort is stable, so equal estimates keep the order given."""
    def key(job) -> float:
        estimate = job.estimate_s
        return -(float("inf") if estimate is None and unknown_first else (estimate or 0.0))
    return sorted(jobs, key=key)


def _read_records(records_path: Path) -> list[dict]:
    try:
        records = json.loads(records_path.read_text())
    except (OSError, ValueError):
        return []
    return [r for r in records if isinstance(r, dict)] if isinstance(records, list) else []


def _run_local(planned: Sequence, slots: Sequence[Slot], *, profile: str, timeout: int, start_timeout: int,
               cores: int, threads_per_job: int | None, write_back: bool, on_result) -> None:
    """Run ``planned`` (already in starting order) on local slots, one process per job."""
    launcher = _Launcher(slots, profile, int(timeout), int(start_timeout), cores=cores, waiting=len(planned),
                         threads_per_job=threads_per_job)
    pool = ThreadPoolExecutor(max_workers=min(len(slots), len(planned)), thread_name_prefix="runner-job")
    try:
        futures = {pool.submit(launcher.run, job): job for job in planned}  # FIFO: started in this order
        for future in as_completed(futures):
            job = futures[future]
            try:
                device, returncode, wall = future.result()
                result = job.finish(device, returncode, wall, write_back)
            except Exception as error:  # noqa: BLE001 - e.g. the log folder vanished
                result = JobResult(notebook=job.notebook, device="?", status="failed", wall_time_s=0.0, kind=job.kind,
                                   error_name=type(error).__name__, error_message=str(error), log_path=job.log_path)
            on_result(job, result)
    except KeyboardInterrupt:
        launcher.stop_all()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


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
    models: Sequence = (),
    store_root: str | Path | None = None,
    cluster=None,
) -> list[JobResult]:
    """Execute ``notebooks`` in parallel with papermill; return one result each, in order.

    ``paper``/``full`` write each successful notebook back in place (or into
    ``output_dir`` if given); ``smoke`` writes into ``output_dir`` (default
    ``<root>/_build/smoke``) and never touches the notebooks. ``gpu_ids``/``cores``
    override detection (tests, or pinning a run by hand); ``threads_per_job``
    fixes the BLAS/OpenMP threads each job gets (default: the cores free when it starts,
    shared among the jobs that could start with it).

    Jobs start longest first, by the wall time recorded for the profile (records.json, else
    the notebook's own stamp). ``models`` (``backprop2lib.store.ModelSpec``) are trained first,
    as jobs of the same runner, into ``store_root`` (default: the store); their results come first.
    ``cluster`` (a :class:`backprop2lib.run.cluster.ClusterOptions`) runs every job on a Dask
    cluster instead of local processes; results, records, stamps and logs are the same.
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
    if not paths and not models:
        return []

    write_back = profile_name in WRITES_IN_PLACE and output_dir is None
    if output_dir is None and not write_back:
        output_dir = root / "_build" / "smoke"
    log_dir = Path(log_dir or root / "_build" / "runner" / "logs").resolve()
    log_dir.mkdir(parents=True, exist_ok=True)
    records_path = Path(records_path or root / "_build" / "runner" / "records.json")
    records = _read_records(records_path)

    planned_notebooks: list[NotebookJob] = []
    for path in paths:
        nb = nbformat.read(str(path), as_version=4)
        planned_notebooks.append(NotebookJob(
            notebook=path,
            destination=path if write_back else Path(output_dir).resolve() / path.name,
            log_path=log_dir / f"{path.stem}.log",
            executed_path=log_dir / f"{path.stem}.executed.ipynb",
            result_path=log_dir / f"{path.stem}.result.json",
            input_sha256=file_sha256(path),
            # Stamp what is about to run, not what the sources are when it finishes.
            stamp=compute_stamp(nb, profile_name, Path(package_root) if package_root else None),
            estimate_s=estimate_seconds(path, profile_name, records, root),
        ))
    if models:
        from backprop2lib.store import default_root

        store = Path(store_root) if store_root is not None else default_root()
    planned_models = [TrainedModelJob(spec=spec, profile=profile_name, store_root=store,
                                      log_path=log_dir / f"{spec.name}.log", threads=threads_per_job)
                      for spec in models]
    phases = [longest_first(phase) for phase in (planned_models, planned_notebooks) if phase]

    from tqdm import tqdm

    results: dict[str, JobResult] = {}
    total = len(planned_models) + len(planned_notebooks)
    bar = tqdm(total=total, unit="job", disable=not progress, file=sys.stderr)

    def on_result(job, result: JobResult) -> None:
        results[job.kind + ":" + job.name] = result
        bar.update(1)
        if progress:
            bar.write(_progress_line(result), file=sys.stderr)

    try:
        if cluster is not None:
            from .cluster import open_cluster, run_on_cluster

            with open_cluster(cluster, log=lambda line: print(line, file=sys.stderr)) as client:
                for phase in phases:
                    run_on_cluster(phase, client, profile=profile_name, timeout=int(timeout),
                                   start_timeout=int(start_timeout), write_back=write_back, on_result=on_result,
                                   describe=lambda text: bar.set_description_str(f"{profile_name}: {text}"))
        else:
            gpu_ids = detect_gpu_ids() if gpu_ids is None else list(gpu_ids)
            cores = cores or available_cores()
            for phase in phases:
                cpu_jobs = jobs if jobs is not None else default_cpu_jobs(len(phase), cores)
                slots = plan_slots(len(gpu_ids), jobs_per_gpu, cpu_jobs, cores, gpu_ids=gpu_ids,
                                   threads_per_job=threads_per_job)
                bar.set_description_str(f"{profile_name}: {len(slots)} slot(s) on "
                                        f"{', '.join(sorted({slot.device for slot in slots}))}")
                _run_local(phase, slots, profile=profile_name, timeout=timeout, start_timeout=start_timeout,
                           cores=cores, threads_per_job=threads_per_job, write_back=write_back, on_result=on_result)
    finally:
        bar.close()
    ordered = ([results["trained-model:" + job.name] for job in planned_models]
               + [results["notebook:" + job.name] for job in planned_notebooks])
    update_records(records_path, ordered, profile_name, root)
    return ordered
