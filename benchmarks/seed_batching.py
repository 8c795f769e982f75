"""Benchmark: training S seeds in one batched run against S runs one after another.

The trainers take ``seeds=[...]`` (``backprop2lib.meta.training``): one call trains one model per
seed, every seed's meta-batch in one computation. This script measures what that buys in
training throughput, on the MAML paper's sinusoids (MLP 1-40-40-1 ReLU, 25 tasks per meta-batch,
K = 10 support + 10 query points, inner step 0.01 on the MSE, Adam 1e-3):

  MAML        1 inner step, second order
  FOMAML      1 inner step, first order
  Reptile     5 inner steps on support + query, outer step 1 (annealed)
  pretrained  Adam on all points

For S = 1, 3, 5, 10: the wall time of ``train_*(seeds=range(S))`` against the summed wall time of
S calls ``train_*(generator=torch.Generator().manual_seed(s))`` (the same models: checked first,
allclose in float32), median of ``--rounds`` rounds, each measured the same way in one process.
Throughput ratio = sequential time ÷ batched time (> 1: batching pays). Beside it, the bound: the
sequential time ÷ one single-seed run with S × 25 tasks per meta-batch, the least arithmetic S seeds
can do; batching the seeds cannot beat that ratio.

    python benchmarks/seed_batching.py                 # ~3 minutes on 2 cores, 1 thread
    python benchmarks/seed_batching.py --threads 2
    python benchmarks/seed_batching.py --quick         # ~20 s sanity run, no results file

Writes the table to stdout and to benchmarks/results/seed_batching_<device>_<threads>t.md.
This is a benchmark, not a test: it asserts that the batched seeds are the single runs, nothing
about speed.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time
from pathlib import Path

import torch

from backprop2lib.meta import from_mse_lr, train_maml, train_pretrained, train_reptile
from backprop2lib.models.mlp import MLP
from backprop2lib.runtime import pick_device
from backprop2lib.tasks import SinusoidTasks

from common import device_description, fmt_s, noisy_note, publish  # benchmarks/common.py

MODEL = MLP((1, 40, 40, 1), activation="relu")
SCHEDULE = dict(meta_batch=25, k_shot=10, k_query=10, progress=False)
INNER = from_mse_lr(0.01)
TRAINERS = {
    "MAML": lambda **kw: train_maml(MODEL, SinusoidTasks.maml(), inner_steps=1, inner_lr=INNER, meta_lr=1e-3, **kw),
    "FOMAML": lambda **kw: train_maml(MODEL, SinusoidTasks.maml(), inner_steps=1, inner_lr=INNER, meta_lr=1e-3,
                                      first_order=True, **kw),
    "Reptile": lambda **kw: train_reptile(MODEL, SinusoidTasks.maml(), inner_steps=5, inner_lr=INNER, **kw),
    "pretrained": lambda **kw: train_pretrained(MODEL, SinusoidTasks.maml(), lr=1e-3, **kw),
}
SEED_COUNTS = (1, 3, 5, 10)


def check_same_models(name: str, device: torch.device) -> str:
    """Seed s of a batched run against the single run with seed s, a few iterations, float32."""
    kw = dict(SCHEDULE, iterations=20, device=device)
    batched = TRAINERS[name](seeds=[0, 1, 2], **kw)
    worst = 0.0
    for s in range(3):
        alone = TRAINERS[name](generator=torch.Generator().manual_seed(s), **kw)
        worst = max(worst, float((batched.params[s] - alone.params).abs().max()))
        if not torch.allclose(batched.params[s], alone.params, rtol=1e-4, atol=1e-5):
            raise SystemExit(f"{name}: seed {s} of the batched run differs from its single run (max |diff| {worst:.2g})")
    return f"- {name}: seeds 0, 1, 2 of a batched run equal their single runs after 20 iterations (max |diff| {worst:.1e})"


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(name: str, n_seeds: int, iterations: int, rounds: int, device: torch.device) -> dict:
    kw = dict(SCHEDULE, iterations=iterations, device=device)
    seeds = list(range(n_seeds))
    wide = dict(kw, meta_batch=n_seeds * SCHEDULE["meta_batch"])
    batched, sequential, shared = [], [], []
    for _ in range(rounds):  # alternate, so a slow spell of the machine hits all three
        batched.append(timed(lambda: TRAINERS[name](seeds=seeds, **kw)))
        sequential.append(timed(lambda: [TRAINERS[name](generator=torch.Generator().manual_seed(s), **kw)
                                         for s in seeds]))
        # the same number of tasks per iteration as the S seeds, but one start for all: what batching
        # the seeds could cost at best, since S seeds do at least this much arithmetic
        shared.append(timed(lambda: TRAINERS[name](generator=torch.Generator().manual_seed(0), **wide)))
    b, q, w = statistics.median(batched), statistics.median(sequential), statistics.median(shared)
    return dict(name=name, S=n_seeds, batched=b, sequential=q, ratio=q / b, shared=w, bound=q / w,
                note=(noisy_note(batched) + noisy_note(sequential) + noisy_note(shared)).strip())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--iterations", type=int, default=None, help="meta-iterations per run (default 200; --quick 30)")
    p.add_argument("--rounds", type=int, default=None, help="timing rounds (default 3; --quick 1)")
    p.add_argument("--quick", action="store_true", help="~20 s sanity run; no results file")
    p.add_argument("--out", type=Path, default=None, help="Markdown results file "
                   "(default benchmarks/results/seed_batching_<device>_<threads>t.md; --quick: not written)")
    args = p.parse_args(argv)
    if args.threads < 1:
        p.error("--threads must be >= 1")
    iterations = args.iterations or (30 if args.quick else 200)
    rounds = args.rounds or (1 if args.quick else 3)
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    started = time.perf_counter()

    checks = [check_same_models(name, device) for name in TRAINERS]
    rows = []
    for name in TRAINERS:
        for n_seeds in SEED_COUNTS:
            r = measure(name, n_seeds, iterations, rounds, device)
            rows.append(r)
            print(f"  {name}, S = {n_seeds}: batched {fmt_s(r['batched'])}, sequential {fmt_s(r['sequential'])}, "
                  f"ratio {r['ratio']:.2f}, one run of S×25 tasks {fmt_s(r['shared'])} (bound {r['bound']:.2f})",
                  flush=True)
    total = time.perf_counter() - started

    lines = [
        "# Training seeds as a batched axis: S seeds in one run against S runs",
        "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- torch {torch.__version__}, Python {sys.version.split()[0]}",
        f"- device: {device_description(device)}; torch threads: {args.threads}",
        "- setting: MAML-paper sinusoids, MLP 1-40-40-1 ReLU, 25 tasks per meta-batch, K = 10 support + 10 query "
        f"points, {iterations} meta-iterations per run; MAML and FOMAML 1 inner step, Reptile 5 (inner step 0.01 on "
        "the MSE), Adam 1e-3",
        f"- times: wall time of whole training calls (task sampling included), median of {rounds} round(s); "
        "the batched run and the S sequential runs alternate within a round",
        "- throughput ratio: sequential ÷ batched (> 1: training the seeds in one batch is faster)",
        "- bound: sequential ÷ one single-seed run with S × 25 tasks per meta-batch. S seeds do at least that "
        "run's arithmetic (the same tasks per iteration, and more: each seed has its own start from the first "
        "inner step), so on this device batching the seeds cannot beat this ratio by more than noise",
        f"- total runtime of this benchmark: {total:.0f} s",
        "",
        "Correctness (before timing):",
        "",
        *checks,
        "",
        "| trainer | seeds S | batched | S runs one after another | throughput ratio | one run, S × 25 tasks "
        "| bound | notes |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    lines += [f"| {r['name']} | {r['S']} | {fmt_s(r['batched'])} | {fmt_s(r['sequential'])} | {r['ratio']:.2f} | "
              f"{fmt_s(r['shared'])} | {r['bound']:.2f} | {r['note']} |" for r in rows]
    publish("\n".join(lines) + "\n", name="seed_batching", out=args.out, quick=args.quick, device=device,
            threads=args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
