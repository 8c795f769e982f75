"""Benchmark: does running notebooks in parallel beat running them one after another?

Copies one notebook N times into a temporary folder and runs the runner on the copies
(smoke profile, outputs into the temporary folder) with ``--jobs 1`` and then
``--jobs 2`` (or the counts given), printing wall times and the serial/parallel
speed-up. Runs on CPU slots (``CUDA_VISIBLE_DEVICES=""``) unless ``--gpu`` is given,
in which case the counts are ``--jobs-per-gpu``.

    python benchmarks/runner_parallel.py                              # notebooks/01_maml_reptile.ipynb x4
    python benchmarks/runner_parallel.py notebooks/02_x.ipynb --copies 6 --jobs 1 2 3
    python benchmarks/runner_parallel.py --demo 10                    # a generated ~10 s CPU-bound notebook
    python benchmarks/runner_parallel.py --book smoke                 # the whole book: serial, parallel, Dask

``--book PROFILE`` runs every chapter of the repository (copied into a temporary folder, outputs
there) three ways: one after another (``--jobs 1``, all cores to each chapter), in parallel on
local slots (``--jobs`` = cores; longest first, from the serial run's records), and on a 2-worker
Dask ``LocalCluster`` (``--cluster local``, the same records). It prints, and writes to
``benchmarks/results/runner_book_<profile>_cpu.md``, each wall time, the speed-up over serial, the
wall time over the longest chapter's (the issue's targets: ≥ 1.7× and ≤ 1.15× in ``paper``) and
Dask's overhead over the local runner.

This is a benchmark, not a test: it asserts nothing about the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
DEFAULT_NOTEBOOK = REPO / "notebooks" / "01_maml_reptile.ipynb"

# Many small tensor ops, like a meta-learning inner loop: bound by per-op overhead,
# so extra BLAS threads do not help and separate processes should.
DEMO_CELL = """\
import time
import torch
torch.manual_seed(0)
x, w = torch.randn(25, 40), torch.randn(40, 40) * 0.1
started = time.perf_counter()
for _ in range({iterations}):
    x = torch.tanh(x @ w + 0.01)
threads = __import__("os").environ.get("OMP_NUM_THREADS")
print(f"{{threads}} threads, {{time.perf_counter() - started:.1f}} s, checksum {{float(x.sum()):.3f}}")
"""


def calibrate_iterations(seconds: float) -> int:
    """Iterations of DEMO_CELL's loop that take about ``seconds`` in one thread."""
    import torch

    torch.set_num_threads(1)
    x, w = torch.randn(25, 40), torch.randn(40, 40) * 0.1
    n, started = 20000, time.perf_counter()
    for _ in range(n):
        x = torch.tanh(x @ w + 0.01)
    return max(1000, int(n * seconds / (time.perf_counter() - started)))


def write_demo_notebook(path: Path, seconds: float) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    parameters = nbformat.v4.new_code_cell("profile = None")
    parameters.metadata["tags"] = ["parameters"]
    nb.cells = [parameters, nbformat.v4.new_code_cell(DEMO_CELL.format(iterations=calibrate_iterations(seconds)))]
    nbformat.write(nb, path)
    return path


def run_once(folder: Path, copies: list[Path], count: int, gpu: bool, timeout: int, threads: int | None) -> float:
    tag = f"jobs{count}"
    command = [sys.executable, "-m", "backprop2lib.run", *map(str, copies), "--root", str(folder),
               "--profile", "smoke", "--output-dir", str(folder / f"out-{tag}"),
               "--log-dir", str(folder / f"logs-{tag}"),
               "--records", str(folder / f"records-{tag}.json"), "--timeout", str(timeout), "--no-progress",
               "--jobs-per-gpu" if gpu else "--jobs", str(count)]
    if threads is not None:
        command += ["--threads-per-job", str(threads)]
    env = dict(os.environ)
    if not gpu:
        env["CUDA_VISIBLE_DEVICES"] = ""
    started = time.perf_counter()
    proc = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"runner failed with {count} job(s):\n{proc.stdout}\n{proc.stderr}")
    records = json.loads((folder / f"records-{tag}.json").read_text())
    per_notebook = ", ".join(f"{r['wall_time_s']:.1f}" for r in records)
    print(f"  {count} job(s): {wall:6.1f} s wall   (per notebook: {per_notebook} s)", flush=True)
    return wall


def run_book(profile: str, timeout: int) -> int:
    import datetime
    import platform

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    folder = Path(tempfile.mkdtemp(prefix="runner-book-"))
    chapters = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    (folder / "notebooks").mkdir()
    copies = [Path(shutil.copyfile(nb, folder / "notebooks" / nb.name)) for nb in chapters]
    records = folder / "records.json"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    modes = [("serial", ["--jobs", "1"]), ("parallel, local", ["--jobs", str(cores)]),
             ("parallel, Dask LocalCluster", ["--cluster", "local", "--workers", str(cores)])]
    walls, per_chapter = {}, {}
    print(f"{len(copies)} chapters, profile {profile}, {cores} CPU(s)", flush=True)
    for label, options in modes:
        command = [sys.executable, "-m", "backprop2lib.run", *map(str, copies), "--root", str(folder),
                   "--profile", profile, "--output-dir", str(folder / "out" / label.split(",")[0]),
                   "--records", str(records), "--timeout", str(timeout), "--no-progress", *options]
        started = time.perf_counter()
        proc = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
        walls[label] = time.perf_counter() - started
        if proc.returncode != 0:
            sys.exit(f"runner failed ({label}):\n{proc.stdout}\n{proc.stderr}")
        if label == "serial":  # each chapter alone, all cores: what "one after another" costs
            per_chapter = {r["notebook"]: r["wall_time_s"] for r in json.loads(records.read_text())
                           if r["profile"] == profile}
        print(f"  {label}: {walls[label]:.1f} s", flush=True)
    shutil.rmtree(folder, ignore_errors=True)
    longest_name, longest = max(per_chapter.items(), key=lambda kv: kv[1])
    serial = walls["serial"]
    # No schedule on `cores` slots can finish before the longest chapter, nor before the chapters' total
    # divided among the cores (each chapter's time alone, all cores to it: an optimistic total).
    bound = max(longest, sum(per_chapter.values()) / cores)
    lines = [
        f"# The whole book through the runner ({profile} profile)", "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; {cores} CPU core(s) "
        f"({platform.processor() or platform.machine()}); load average at the end "
        f"{' / '.join(f'{x:.1f}' for x in os.getloadavg())}",
        f"- {len(copies)} chapters; serial = `--jobs 1` (each chapter alone with all {cores} cores); parallel = "
        f"`--jobs {cores}`, longest first from the serial run's records, threads sized from the free cores; Dask = "
        f"`--cluster local --workers {cores}` (a LocalCluster on 127.0.0.1), the same records",
        f"- longest chapter alone: {Path(longest_name).name}, {longest:.1f} s; chapters alone: "
        + ", ".join(f"{Path(n).name.split('_')[0]} {w:.0f} s" for n, w in sorted(per_chapter.items())),
        f"- lower bound for any schedule on {cores} cores: max(longest chapter, total ÷ {cores}) = {bound:.1f} s", "",
        "| mode | wall (s) | serial ÷ this | this ÷ longest chapter | this ÷ lower bound | overhead vs local parallel |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    local = walls["parallel, local"]
    for label, wall in walls.items():
        overhead = f"{(wall - local) / local:+.1%}" if label.startswith("parallel, Dask") else ""
        lines.append(f"| {label} | {wall:.1f} | {serial / wall:.2f} | {wall / longest:.2f} | {wall / bound:.2f} "
                     f"| {overhead} |")
    text = "\n".join(lines) + "\n"
    print(text)
    out = REPO / "benchmarks" / "results" / f"runner_book_{profile}_cpu.md"
    out.write_text(text)
    print(f"written: {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebook", nargs="?", type=Path, default=DEFAULT_NOTEBOOK)
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2], help="job counts to compare (first = baseline)")
    parser.add_argument("--demo", type=float, metavar="SECONDS", default=None,
                        help="instead of NOTEBOOK, generate a CPU-bound notebook taking about SECONDS")
    parser.add_argument("--gpu", action="store_true", help="keep GPUs visible; the counts become --jobs-per-gpu")
    parser.add_argument("--timeout", type=int, default=3600, help="per-cell timeout passed to the runner")
    parser.add_argument("--threads-per-job", type=int, default=None,
                        help="passed to the runner (default: its own cores // jobs)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, outputs)")
    parser.add_argument("--book", metavar="PROFILE", default=None,
                        help="the whole book in PROFILE: serial vs parallel vs Dask LocalCluster (see above)")
    args = parser.parse_args(argv)
    if args.book:
        return run_book(args.book, args.timeout)

    folder = Path(tempfile.mkdtemp(prefix="runner-bench-"))
    try:
        if args.demo is not None:
            source = write_demo_notebook(folder / "demo.ipynb", args.demo)
        elif args.notebook.is_file():
            source = args.notebook.resolve()
        else:
            parser.error(f"{args.notebook} does not exist (use --demo SECONDS for a generated notebook)")
        copies = []
        for i in range(args.copies):
            copy = folder / f"{i:02d}_{source.stem}.ipynb"
            shutil.copyfile(source, copy)
            copies.append(copy)
        # Copies run from the temp folder: a notebook reading files relative to its own
        # folder needs them copied too (book notebooks use backprop2lib's bundled data).
        print(f"{args.copies} copies of {source.name}, smoke profile, {os.cpu_count()} CPU(s), "
              f"{'GPU' if args.gpu else 'CPU'} slots", flush=True)
        walls = {count: run_once(folder, copies, count, args.gpu, args.timeout, args.threads_per_job)
                 for count in args.jobs}
        baseline = args.jobs[0]
        for count in args.jobs[1:]:
            print(f"speed-up {baseline} -> {count} job(s): {walls[baseline] / walls[count]:.2f}x")
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
