"""The runner on a Dask cluster: a ``LocalCluster`` (``--cluster local``), an existing scheduler
(``--scheduler tcp://HOST:8786`` or ``tls://…``) or Slurm jobs started by dask-jobqueue
(``--cluster slurm --cluster-config FILE``).

Each job (a notebook, or a stored model to train: :mod:`backprop2lib.run.tasks`) becomes one Dask
task, :func:`execute_job`. Workers need no shared filesystem: the task carries the job's input
files and the client's library stamp; the worker refuses to run if its installed backprop2lib has
another stamp, otherwise it runs the job's command in a private folder and sends back its output
files and log. The client alone writes into the repository, as the local runner does.

Scheduling: jobs are submitted longest first (Dask priorities). A worker that advertises ``GPU``
resources (``dask worker --resources GPU=2``: GPUs × jobs per GPU) takes GPU jobs, one resource
unit each, on the GPU it hands out in turn; when any worker has GPUs, every job asks for one; on a
cluster without GPUs the jobs run on the CPU workers.

Failures: a worker that dies mid-job makes the scheduler hand the task to another worker; the task
counts its attempts in the scheduler's metadata, runs at most twice (one retry, as for a dead kernel)
and the report says "retried: worker lost". An unreachable scheduler is a :class:`ClusterError`
within ``connect_timeout`` seconds.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .notebooks import PACKAGE_ROOT
from .slots import available_cores, detect_gpu_ids, thread_env
from .tasks import JobResult, python_command

MAX_ATTEMPTS = 2  # a job whose worker died gets one more worker
EXIT_WITH_PARENT_ENV = "BACKPROP2_EXIT_WITH_PARENT"  # the job process stops when its worker is gone
CLUSTER_KINDS = ("local", "slurm")
WORKER_ONLY_ENV = ("MALLOC_TRIM_THRESHOLD_",)  # set for Dask's worker processes, wrong for a job's


class ClusterError(RuntimeError):
    """The cluster could not be reached, started or configured."""


class LibraryMismatch(RuntimeError):
    """A worker's installed backprop2lib is not the code the client asked to run."""


@dataclass(frozen=True)
class ClusterOptions:
    """Where the jobs go. ``kind``: "local" (a LocalCluster on this machine), "slurm" (dask-jobqueue,
    configured by ``config``) or None with ``scheduler`` set (an existing cluster)."""

    kind: str | None = "local"
    scheduler: str | None = None
    workers: int | None = None  # local: worker processes (default: one per core, or one for all GPUs)
    jobs_per_gpu: int = 1
    config: Path | None = None  # slurm: a TOML file, see slurm_cluster
    tls_ca_file: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    connect_timeout: float = 30.0

    def __post_init__(self):
        if self.scheduler is None and self.kind not in CLUSTER_KINDS:
            raise ValueError(f"cluster: expected one of {', '.join(CLUSTER_KINDS)} or a scheduler address, "
                             f"got {self.kind!r}")
        if self.scheduler is not None and self.kind is not None:
            raise ValueError("give either a cluster kind or a scheduler address, not both")
        if self.kind == "slurm" and self.config is None:
            raise ValueError("cluster slurm: a configuration file is required (--cluster-config)")
        tls = (self.tls_ca_file, self.tls_cert, self.tls_key)
        if any(tls) and not all(tls):
            raise ValueError("TLS needs all three of --tls-ca-file, --tls-cert and --tls-key")
        if self.jobs_per_gpu < 1:
            raise ValueError(f"jobs_per_gpu: expected at least 1, got {self.jobs_per_gpu}")


def library_stamp(package_root: Path | None = None) -> str:
    """sha256 over every module of the installed backprop2lib (paths and bytes): what a worker must match."""
    root = Path(package_root or PACKAGE_ROOT)
    digest = hashlib.sha256(b"backprop2-library/1")
    for path in sorted(root.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def security(options: ClusterOptions):
    if options.tls_ca_file is None:
        return None
    from distributed.security import Security

    return Security(tls_ca_file=str(options.tls_ca_file), tls_client_cert=str(options.tls_cert),
                    tls_client_key=str(options.tls_key), require_encryption=True)


def _dashboard_address() -> str | None:
    # The dashboard needs bokeh, which the book does not install; bind it to localhost when it is there.
    return "127.0.0.1:0" if importlib.util.find_spec("bokeh") else None


def local_cluster(options: ClusterOptions):
    """A LocalCluster bound to 127.0.0.1: one single-threaded worker per core (each job gets cores ÷ workers
    BLAS threads), or, with GPUs, one worker holding them all as ``GPU`` resources."""
    from distributed import LocalCluster

    gpus = detect_gpu_ids()
    cores = available_cores()
    common = dict(host="127.0.0.1", processes=True, dashboard_address=_dashboard_address(),
                  protocol="tls://" if options.tls_ca_file else "tcp://")
    if options.tls_ca_file:
        common["security"] = security(options)
    if gpus:
        slots = len(gpus) * options.jobs_per_gpu
        return LocalCluster(n_workers=1, threads_per_worker=slots, resources={"GPU": slots},
                            env=thread_env(max(1, cores // slots)), **common)
    workers = max(1, options.workers or cores)
    return LocalCluster(n_workers=workers, threads_per_worker=1, env=thread_env(max(1, cores // workers)),
                        **common)


def slurm_cluster(options: ClusterOptions):
    """Workers as Slurm jobs (dask-jobqueue). The TOML file's ``[slurm]`` table: ``queue``, ``walltime``,
    ``cores``, ``memory``, ``jobs`` (how many Slurm jobs), and optionally ``account``, ``gpus_per_job``,
    ``processes`` (workers per job), ``interface`` (the network interface workers reach the scheduler on),
    ``python``, ``job_extra`` (more #SBATCH lines). GPUs become ``GPU`` resources: gpus × jobs per GPU."""
    import tomllib

    try:
        from dask_jobqueue import SLURMCluster
    except ImportError as error:  # the optional extra
        raise ClusterError("--cluster slurm needs dask-jobqueue: pip install -e '.[slurm]'") from error
    path = Path(options.config)
    try:
        table = tomllib.loads(path.read_text())["slurm"]
    except FileNotFoundError as error:
        raise ClusterError(f"cluster config {path}: file not found") from error
    except (tomllib.TOMLDecodeError, KeyError) as error:
        raise ClusterError(f"cluster config {path}: expected a TOML file with a [slurm] table ({error})") from error
    required = ("queue", "walltime", "cores", "memory", "jobs")
    missing = [key for key in required if key not in table]
    if missing:
        raise ClusterError(f"cluster config {path}: [slurm] lacks {', '.join(missing)}")
    known = set(required) | {"account", "gpus_per_job", "processes", "interface", "python", "job_extra"}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ClusterError(f"cluster config {path}: unknown [slurm] key(s) {', '.join(unknown)}; "
                           f"known: {', '.join(sorted(known))}")
    gpus = int(table.get("gpus_per_job", 0))
    processes = int(table.get("processes", 1))
    extra = list(table.get("job_extra", []))
    worker_args = []
    if gpus:
        extra.append(f"--gres=gpu:{gpus}")
        worker_args = ["--resources", f"GPU={gpus * options.jobs_per_gpu // processes or 1}"]
    cluster = SLURMCluster(
        queue=table["queue"], account=table.get("account"), walltime=table["walltime"], cores=int(table["cores"]),
        memory=table["memory"], processes=processes, interface=table.get("interface"),
        python=table.get("python", sys.executable), job_extra_directives=extra, worker_extra_args=worker_args,
        scheduler_options={"dashboard_address": _dashboard_address() or ":0"} if _dashboard_address() else {},
    )
    cluster.scale(jobs=int(table["jobs"]))
    return cluster


@contextlib.contextmanager
def open_cluster(options: ClusterOptions, log: Callable[[str], None] = print) -> Iterator:
    """A connected ``distributed.Client`` for the run (and the cluster it started, closed afterwards)."""
    from distributed import Client

    # set_as_default: distributed.as_completed finds its client through the default, for this run only
    cluster = None
    if options.scheduler is not None:
        try:
            client = Client(options.scheduler, timeout=options.connect_timeout, security=security(options),
                            set_as_default=True)
        except (OSError, TimeoutError) as error:
            raise ClusterError(f"could not reach the Dask scheduler at {options.scheduler} within "
                               f"{options.connect_timeout:g} s: {error}") from error
    else:
        try:
            cluster = local_cluster(options) if options.kind == "local" else slurm_cluster(options)
        except ClusterError:
            raise
        except Exception as error:  # noqa: BLE001 - e.g. sbatch missing, ports refused
            raise ClusterError(f"could not start the {options.kind} Dask cluster: {type(error).__name__}: "
                               f"{error}") from error
        client = Client(cluster, set_as_default=True)
    try:
        where = options.scheduler or f"{options.kind} cluster at {client.scheduler.address}"
        dashboard = _dashboard_link(client)
        log(f"[runner] Dask: {where}" + (f", dashboard {dashboard}" if dashboard else ""))
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _dashboard_link(client) -> str | None:
    try:
        return client.dashboard_link if client.scheduler_info().get("services", {}).get("dashboard") else None
    except Exception:  # noqa: BLE001 - the dashboard is optional
        return None


def _workers(client) -> dict:
    """Every worker's scheduler info (recent versions list only 5 unless asked for all)."""
    try:
        return client.scheduler_info(n_workers=-1).get("workers", {})
    except TypeError:  # distributed before 2025: every worker, and no such argument
        return client.scheduler_info().get("workers", {})


# ---------------------------------------------------------------------------------------------- worker side

_GPU_POOL: queue.Queue | None = None
_GPU_LOCK = threading.Lock()


def _gpu_pool(units: int) -> queue.Queue:
    """The worker's GPUs, each listed once per job it may run at once (resource units ÷ GPUs)."""
    global _GPU_POOL
    with _GPU_LOCK:
        if _GPU_POOL is None:
            ids = detect_gpu_ids() or ["0"]
            pool: queue.Queue = queue.Queue()
            for _ in range(max(1, units // len(ids))):
                for gpu in ids:
                    pool.put(gpu)
            _GPU_POOL = pool
        return _GPU_POOL


def _count_attempt(run_id: str, key: str) -> int:
    from distributed import get_client

    client = get_client()
    path = ["backprop2-runner", run_id, key]
    attempt = int(client.get_metadata(path, default=0)) + 1
    client.set_metadata(path, attempt)
    return attempt


def execute_job(module: str, args: list[str], inputs: dict[str, bytes], outputs: list[str], env: dict[str, str],
                *, expected_stamp: str, run_id: str, job_key: str, profile: str) -> dict:
    """The Dask task: check the library stamp, run ``python -m module args`` in a private folder, return
    ``{returncode, files, log, device, wall, attempt}``."""
    from distributed import get_worker

    worker = get_worker()
    have = library_stamp()
    if have != expected_stamp:
        raise LibraryMismatch(
            f"worker {worker.name} ({worker.address}) has backprop2lib {have[:16]} installed, the client "
            f"{expected_stamp[:16]}: install the client's version of the library on the worker")
    attempt = _count_attempt(run_id, job_key)
    if attempt > MAX_ATTEMPTS:
        return {"refused": f"its worker died during {attempt - 1} attempts", "attempt": attempt,
                "device": f"?@{worker.name}"}
    units = int(worker.state.total_resources.get("GPU", 0))
    gpu = _gpu_pool(units).get() if units else None
    try:
        device = f"cuda:{gpu}" if gpu is not None else "cpu"
        threads = os.environ.get("OMP_NUM_THREADS") or str(max(1, available_cores() // max(1, worker.state.nthreads)))
        with tempfile.TemporaryDirectory(prefix="backprop2-job-") as workdir:
            for relative, data in inputs.items():
                target = Path(workdir) / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            # Not the nanny's MALLOC_TRIM_THRESHOLD_ (Dask's worker tuning): inherited by a torch job, glibc
            # hands memory back after every free, and the system time doubled a chapter's wall time.
            inherited = {k: v for k, v in os.environ.items() if k not in WORKER_ONLY_ENV}
            job_env = {**inherited, **thread_env(int(threads)),
                       **{k: v.replace("{workdir}", workdir) for k, v in env.items()},
                       "BACKPROP2_PROFILE": profile, "BACKPROP2_PROGRESS": "0", "PYTHONUNBUFFERED": "1",
                       EXIT_WITH_PARENT_ENV: "1", "CUDA_VISIBLE_DEVICES": gpu if gpu is not None else ""}
            command = python_command(module, [a.replace("{device}", device) for a in args])
            log_path = Path(workdir) / "job.log"
            started = time.perf_counter()
            with open(log_path, "w", encoding="utf-8") as log:
                returncode = subprocess.run(command, cwd=workdir, env=job_env, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL).returncode
            wall = time.perf_counter() - started
            files = {rel: (Path(workdir) / rel).read_bytes() for rel in outputs if (Path(workdir) / rel).is_file()}
            return {"returncode": returncode, "files": files, "log": log_path.read_text(errors="replace"),
                    "device": f"{device}@{worker.name}", "wall": wall, "attempt": attempt,
                    "threads": int(threads)}
    finally:
        if gpu is not None:
            _gpu_pool(units).put(gpu)


def exit_with_parent(interval: float = 1.0) -> None:
    """In a job process started by :func:`execute_job`: exit as soon as the worker that started it is gone
    (a killed worker's job would otherwise run on, unseen, and compete with its retry)."""
    if os.environ.get(EXIT_WITH_PARENT_ENV) != "1":
        return
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os._exit(3)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


# ---------------------------------------------------------------------------------------------- client side

def run_on_cluster(jobs: Sequence, client, *, profile: str, timeout: int, start_timeout: int, write_back: bool,
                   on_result: Callable, describe: Callable[[str], None] = lambda text: None) -> None:
    """Submit ``jobs`` (in starting order) to ``client``'s cluster; deliver each result as it completes."""
    from distributed import as_completed
    from distributed.client import FutureCancelledError

    expected = library_stamp()
    run_id = uuid.uuid4().hex
    workers = _workers(client)
    gpu = any(info.get("resources", {}).get("GPU") for info in workers.values())
    describe(f"{len(workers)} Dask worker(s)" + (", GPU jobs" if gpu else ""))
    futures = {}
    for index, job in enumerate(jobs):
        remote = job.remote(profile, timeout, start_timeout)
        job.prepare()
        future = client.submit(
            execute_job, job.module, remote.args, remote.inputs, remote.outputs, remote.env,
            expected_stamp=expected, run_id=run_id, job_key=f"{job.kind}:{job.name}", profile=profile,
            key=f"backprop2-{job.kind}-{job.name}-{run_id[:8]}", pure=False, priority=len(jobs) - index,
            resources={"GPU": 1} if gpu else None,
        )
        futures[future] = job
    for future in as_completed(list(futures)):
        job = futures[future]
        result = _deliver(job, future, write_back, FutureCancelledError)
        on_result(job, result)


def _deliver(job, future, write_back: bool, cancelled) -> JobResult:
    def failed(name: str, message: str, device: str = "?") -> JobResult:
        return JobResult(notebook=job.notebook, device=device, status="failed", wall_time_s=0.0, kind=job.kind,
                         error_name=name, error_message=message, log_path=job.log_path)

    try:
        out = future.result()
    except LibraryMismatch as error:
        return failed("LibraryMismatch", str(error))
    except cancelled as error:
        return failed("Cancelled", str(error))
    except Exception as error:  # noqa: BLE001 - KilledWorker (Dask gave up), a worker's crash, ...
        return failed(type(error).__name__, str(error))
    if "refused" in out:
        result = failed("WorkerLost", f"not run again: {out['refused']}", out["device"])
        result.retried, result.retry_reason = True, "worker lost"
        return result
    job.log_path.write_text(f"# {job.name} on {out['device']} ({out['threads']} thread(s)), attempt "
                            f"{out['attempt']}\n" + out["log"], encoding="utf-8")
    job.receive(out["files"])
    result = job.finish(out["device"], out["returncode"], out["wall"], write_back)
    if out["attempt"] > 1:
        result.retried, result.retry_reason = True, "worker lost"
    return result
