"""Execution slots: where each notebook job runs and with which environment.

A slot is a device label plus the environment variables its job process gets. The
parent process never imports torch or initialises CUDA: it only reads
``CUDA_VISIBLE_DEVICES`` or asks ``nvidia-smi``, so a CUDA context is created in the
job's kernel alone, on the one GPU that job is allowed to see.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Slot:
    """One concurrent job position: ``device`` is for reports, ``env`` goes to the job."""

    device: str
    env: Mapping[str, str] = field(default_factory=dict)


def available_cores() -> int:
    """CPU cores this process may use (respects affinity masks, e.g. in containers)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def detect_gpu_ids(environ: Mapping[str, str] | None = None, nvidia_smi: str | None = "nvidia-smi") -> list[str]:
    """IDs of the GPUs this process may use, without touching CUDA.

    ``CUDA_VISIBLE_DEVICES`` wins when set (empty means no GPU; CUDA stops at the first
    ``-1``, so do we). Otherwise each ``GPU n:`` line of ``nvidia-smi -L`` is one GPU.
    No nvidia-smi, or one that fails, means no GPU.
    """
    environ = os.environ if environ is None else environ
    if "CUDA_VISIBLE_DEVICES" in environ:
        ids = []
        for token in environ["CUDA_VISIBLE_DEVICES"].split(","):
            token = token.strip()
            if not token or token == "-1":
                break
            ids.append(token)
        return ids
    exe = shutil.which(nvidia_smi) if nvidia_smi else None
    if exe is None:
        return []
    try:
        listing = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    count = sum(1 for line in listing.splitlines() if line.startswith("GPU "))
    return [str(i) for i in range(count)]


def default_cpu_jobs(n_notebooks: int, cores: int) -> int:
    """One worker per core, but never more workers than notebooks."""
    return max(1, min(n_notebooks, cores))


def thread_env(threads: int) -> dict[str, str]:
    # Oversubscribed BLAS/OpenMP pools make parallel runs slower than serial ones (or
    # hang), so every job gets its share of the cores and no more.
    value = str(threads)
    return {"OMP_NUM_THREADS": value, "MKL_NUM_THREADS": value, "OPENBLAS_NUM_THREADS": value}


def plan_slots(
    n_gpus: int,
    jobs_per_gpu: int = 1,
    cpu_jobs: int = 1,
    cores: int = 1,
    gpu_ids: Sequence[str] | None = None,
    threads_per_job: int | None = None,
) -> list[Slot]:
    """The slots for a run, as a pure function of the machine (so tests can fake it).

    With GPUs: ``n_gpus * jobs_per_gpu`` slots, each pinned to one GPU through
    ``CUDA_VISIBLE_DEVICES`` (``gpu_ids`` maps our index to the ID the parent saw, for
    a parent that itself runs under ``CUDA_VISIBLE_DEVICES=2,3``). Slots are ordered
    round-robin over GPUs so the first jobs spread over all of them.

    Without GPUs: ``cpu_jobs`` slots (at most ``cores``) with ``CUDA_VISIBLE_DEVICES=""``
    so accidental GPU use fails loudly instead of silently running elsewhere.

    Every job gets ``cores // slots`` (at least 1) BLAS/OpenMP threads, or
    ``threads_per_job`` when given (tiny-op workloads can run faster on one thread:
    see benchmarks/runner_parallel.py).
    """
    if n_gpus < 0:
        raise ValueError(f"n_gpus must be >= 0, got {n_gpus}")
    if jobs_per_gpu < 1:
        raise ValueError(f"jobs_per_gpu must be >= 1, got {jobs_per_gpu}")
    if cpu_jobs < 1:
        raise ValueError(f"cpu_jobs must be >= 1, got {cpu_jobs}")
    if cores < 1:
        raise ValueError(f"cores must be >= 1, got {cores}")
    if threads_per_job is not None and threads_per_job < 1:
        raise ValueError(f"threads_per_job must be >= 1, got {threads_per_job}")
    if n_gpus > 0:
        ids = [str(i) for i in range(n_gpus)] if gpu_ids is None else [str(i) for i in gpu_ids]
        if len(ids) != n_gpus:
            raise ValueError(f"gpu_ids has {len(ids)} entries for n_gpus={n_gpus}")
        threads = thread_env(threads_per_job or max(1, cores // (n_gpus * jobs_per_gpu)))
        return [
            Slot(device=f"cuda:{index}", env={"CUDA_VISIBLE_DEVICES": ids[index], **threads})
            for _ in range(jobs_per_gpu)
            for index in range(n_gpus)
        ]
    workers = min(cpu_jobs, cores)
    threads = thread_env(threads_per_job or max(1, cores // workers))
    return [Slot(device="cpu", env={"CUDA_VISIBLE_DEVICES": "", **threads}) for _ in range(workers)]
