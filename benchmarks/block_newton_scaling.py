"""Benchmark: seconds per step of backprop2's block-diagonal generalised Newton against the number of
parameters P, with blocks of at most 7 (``BlockNewton()``) and with the full Hessian
(``BlockNewton(max_block_size=None)``).

One step = ``BlockNewton(...).step(w, grad, state, loss)`` after ``state = opt.init(w, problem)`` on an
``MLPProblem`` with one fixed batch and seed 0 (the block draw): loss, gradient, the Hessians
(within-block: O(N·P·b) for the products plus the ε recursion; full: ``torch.func.hessian``),
one batched ``torch.linalg.eigh`` (b = 7: O(P·b²); full: O(P³)) and the step rule. T = 1 model,
float32, N = 64 points, x ~ N(0, 1), random labels out of 10, MLP d_in-H-10 sigmoid. Two series:

  width     H = 20, d_in grown so that P = 20·d_in + 230 is about 10^3 ... 10^5 (an MNIST-like MLP:
            P grows with the input width, the hidden ε stays 20×20); b = 7 at every P, the full
            Hessian only while its predicted step time stays under --full-limit (default 20 s)
  hidden    d_in = 64, H = 16 ... 1024 (P = 75·H + 10): the ε recursion materialises the hidden
            layer's ε, [N, H, H] per step, so its cost grows as N·H²·10, faster than P

The exponent k in seconds ∝ P^k is fitted by least squares on log-log for each series. Before
timing, on the smallest width point in float64, the block Hessians must equal the matching
entries of the full Hessian, or the script stops.

    python benchmarks/block_newton_scaling.py                  # full run, 2 threads (~1 minute on 2 cores)
    python benchmarks/block_newton_scaling.py --threads 1
    python benchmarks/block_newton_scaling.py --quick          # ~10 s sanity run, no results file
    python benchmarks/block_newton_scaling.py --device cuda

Writes the tables to stdout and to benchmarks/results/block_newton_scaling_<device>_<threads>t.md.
This is a benchmark, not a test: it asserts the block Hessians are right, nothing about speed.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from backprop2lib.models.mlp import MLP
from backprop2lib.runtime import describe_device, pick_device
from backprop2lib.second_order import BlockNewton, MLPProblem, full_hessian, loss_grad_and_block_hessians
from backprop2lib.stats import fitted_exponent
from backprop2lib.timing import time_per_call

from common import NOISY, device_description, fmt_s, noisy_note, publish  # benchmarks/common.py


N_POINTS = 64
N_CLASSES = 10
ACTIVATION = "sigmoid"
LOSS = "cross_entropy"
BLOCK = 7
WIDTH_H = 20  # width series: hidden units
HIDDEN_D_IN = 64  # hidden series: input width
SEED_DATA, SEED_BLOCKS = 0, 0
ROUNDS = 3
RTOL, ATOL = 1e-8, 1e-10  # float64 check


@dataclass(frozen=True)
class Point:
    series: str
    d_in: int
    hidden: int

    @property
    def model(self) -> MLP:
        return MLP((self.d_in, self.hidden, N_CLASSES), activation=ACTIVATION)

    @property
    def n_params(self) -> int:
        return self.model.n_params


def width_points(quick: bool) -> list[Point]:
    targets = (300, 1000, 3000) if quick else (1_000, 2_000, 3_000, 5_000, 10_000, 30_000, 100_000)
    fixed = (WIDTH_H + 1) * N_CLASSES + WIDTH_H  # P = d_in·H + H + 10·H + 10
    return [Point("width", max(1, round((p - fixed) / WIDTH_H)), WIDTH_H) for p in targets]


def hidden_points(quick: bool) -> list[Point]:
    widths = (8, 16, 32) if quick else (16, 32, 64, 128, 256, 512, 1024)
    return [Point("hidden", HIDDEN_D_IN, h) for h in widths]


def make_problem(point: Point, device: torch.device, dtype: torch.dtype = torch.float32):
    model = point.model
    g = torch.Generator().manual_seed(SEED_DATA)
    w = model.flatten(model.init(1, generator=g, dtype=dtype)).to(device)
    x = torch.randn(1, N_POINTS, point.d_in, generator=g, dtype=dtype).to(device)
    y = torch.randint(0, N_CLASSES, (1, N_POINTS), generator=g).to(device)
    return model, w, (x, y)


def stepper_state(opt: BlockNewton, model, w, batch):
    """``opt``'s state for one fixed batch, its blocks drawn with SEED_BLOCKS (as the chapter's loop does)."""
    return opt.init(w, MLPProblem(model, w, lambda step: batch, LOSS, seed=SEED_BLOCKS))


# ------------------------------------------------------------------------ correctness
def check_correctness(point: Point, device: torch.device) -> str:
    """Block Hessians against the matching entries of the full Hessian (float64), and a finite full step."""
    model, w, batch = make_problem(point, device, torch.float64)
    opt = BlockNewton(max_block_size=BLOCK)
    state = stepper_state(opt, model, w, batch)
    partition = state["partition"]
    with torch.no_grad():
        _, _, blocks = loss_grad_and_block_hessians(model, w, *batch, partition, loss=LOSS)
        full = full_hessian(model, w, *batch, loss=LOSS)[0]
        diff, scale, ok = 0.0, float(full.abs().max()), True
        for group, h in zip(partition.groups, blocks):
            ref = full[group.index.unsqueeze(-1), group.index.unsqueeze(-2)]  # [n_blocks, s, s]
            ok &= torch.allclose(h[0], ref, rtol=RTOL, atol=ATOL)
            diff = max(diff, float((h[0] - ref).abs().max()))
        full_opt = BlockNewton(max_block_size=None)
        finite = bool(torch.isfinite(full_opt.step(w, None, stepper_state(full_opt, model, w, batch), None)).all())
    line = (f"MLP {point.d_in}-{point.hidden}-{N_CLASSES} (P = {model.n_params}), float64: {partition.n_blocks} "
            f"block Hessians (b = {BLOCK}) equal the matching entries of the full Hessian (torch.func.hessian; "
            f"allclose rtol {RTOL:g}, atol {ATOL:g}): {'yes' if ok else 'no'} (max |diff| {diff:.1e}, "
            f"max |H| {scale:.1e}); full-Hessian step finite: {'yes' if finite else 'no'}")
    print(line, flush=True)
    if not (ok and finite):
        sys.exit("FAILED: the block Hessians disagree with the full Hessian (or the full step is not finite), "
                 "so the timings would not measure the method")
    return line


# ---------------------------------------------------------------------------- timing
def measure(point: Point, block: int | None, device: torch.device, budget: float) -> dict:
    """Seconds per step: one untimed call, then ROUNDS rounds of backprop2lib.timing.time_per_call
    (warmup 0) with as many calls per round as fit ~budget/ROUNDS s (at least 1); median of rounds."""
    model, w, batch = make_problem(point, device)
    opt = BlockNewton(max_block_size=block)
    state = stepper_state(opt, model, w, batch)

    def call():
        # w is not updated: every call does the same work (the step computes its own loss, gradient and Hessians)
        opt.step(w, None, state, None)

    with torch.no_grad():
        start = time.perf_counter()
        call()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        first = time.perf_counter() - start
        repeats = max(1, int(budget / ROUNDS / max(first, 1e-9)))
        per_round = [time_per_call(call, repeats=repeats, warmup=0, rounds=1, device=device) for _ in range(ROUNDS)]
    return dict(series=point.series, d_in=point.d_in, hidden=point.hidden, P=model.n_params,
                method="full" if block is None else f"b={block}", seconds=float(np.median(per_round)),
                rounds=per_round, repeats=repeats, first=first)


def fit_exponent(rows: list[dict]) -> float:
    """k in seconds ∝ P^k, least squares on log-log."""
    return fitted_exponent([r["P"] for r in rows], [r["seconds"] for r in rows])


def fmt_rounds(m: dict) -> str:
    lo, hi = min(m["rounds"]), max(m["rounds"])
    noisy = noisy_note(m["rounds"])
    return f"{len(m['rounds'])} × {m['repeats']} calls, rounds {fmt_s(lo)} … {fmt_s(hi)}{noisy}"


# --------------------------------------------------------------------------- reporting
def header(args, device: torch.device, check: str, total_s: float | None) -> str:
    dev = device_description(device)
    lines = [
        "# Block-diagonal generalised Newton: seconds per step against the number of parameters",
        "",
        f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- torch {torch.__version__}, numpy {np.__version__}, Python {platform.python_version()}",
        f"- device: {dev}; torch threads: {args.threads}",
        f"- setting: MLP d_in-H-{N_CLASSES} {ACTIVATION}, cross-entropy loss, T = 1 model, float32, N = {N_POINTS} "
        f"points, x ~ N(0, I), labels uniform in 0..{N_CLASSES - 1}, parameters MLP.init (PyTorch scheme), data "
        f"and parameters seed {SEED_DATA}; width series: H = {WIDTH_H}, d_in grown (P = {WIDTH_H}·d_in + "
        f"{(WIDTH_H + 1) * N_CLASSES + WIDTH_H}); hidden series: d_in = {HIDDEN_D_IN}, H grown "
        f"(P = {HIDDEN_D_IN + 1 + N_CLASSES}·H + {N_CLASSES})",
        f"- one step: `BlockNewton(max_block_size=b).step(w, grad, state, loss)` after "
        f"`state = opt.init(w, MLPProblem(model, w, batches, \"{LOSS}\", seed={SEED_BLOCKS}))` (rule backprop2, lr 0.1, "
        f"max_step 1, no line search), under torch.no_grad; w is not updated, so every call does the same work. "
        f"b = {BLOCK}: random within-layer blocks, ε recursion, within-block products (O(N·P·b)), batched eigh "
        f"(O(P·b²)); full (max_block_size=None): torch.func.hessian of the loss (P×P) and one eigh (O(P³))",
        f"- seconds: median over {ROUNDS} rounds of the mean seconds per step (backprop2lib.timing.time_per_call, "
        f"warmup 0, after one untimed step); calls per round chosen so a measurement takes ~{args.budget:g} s "
        f"(at least 1 call per round){'; --quick' if args.quick else ''}; notes give rounds × calls and the "
        f"fastest and slowest round",
        f"- full Hessian: run on the width series while its predicted step time (the last measured full step × "
        f"(P / P_last)³) stays under {args.full_limit:g} s; larger P skipped (the row says the prediction)",
        "- k: least-squares slope of log(seconds) on log(P) over the series' points (and over its three "
        "largest P); ratio: full ÷ b = 7 seconds per step at the same P (> 1: blocks are cheaper)",
    ]
    if device.type == "cpu" and args.threads >= (os.cpu_count() or 1):
        lines.append(f"- caution: {args.threads} threads on {os.cpu_count()} cores: any other load on the machine "
                     "stalls the OpenMP thread team on every small op; rows marked noisy (slowest round over "
                     f"{NOISY:g}× the fastest) are not to be trusted")
    if total_s is not None:
        lines.append(f"- total runtime of this benchmark: {total_s:.0f} s")
    lines += ["", "Correctness (before timing):", "", f"- {check}"]
    return "\n".join(lines)


def width_table(rows: list[dict], skipped: dict[int, float]) -> str:
    out = [f"## Width series: H = {WIDTH_H}, d_in grown", "",
           f"| d_in | P | b = {BLOCK} s/step | full s/step | full ÷ b = {BLOCK} | notes |",
           "| ---: | ---: | ---: | ---: | ---: | --- |"]
    for b in (r for r in rows if r["method"] == f"b={BLOCK}"):
        full = next((r for r in rows if r["method"] == "full" and r["P"] == b["P"]), None)
        if full is not None:
            f_s, ratio = fmt_s(full["seconds"]), f"**{full['seconds'] / b['seconds']:.0f}**"
            note = f"b = {BLOCK}: {fmt_rounds(b)}; full: {fmt_rounds(full)}"
        else:
            f_s, ratio = f"skipped (predicted {skipped[b['P']]:.0f} s)", "–"
            note = f"b = {BLOCK}: {fmt_rounds(b)}"
        out.append(f"| {b['d_in']} | {b['P']:,} | {fmt_s(b['seconds'])} | {f_s} | {ratio} | {note} |")
    return "\n".join(out)


def hidden_table(rows: list[dict]) -> str:
    out = [f"## Hidden series: d_in = {HIDDEN_D_IN}, H grown (b = {BLOCK})", "",
           f"| H | P | b = {BLOCK} s/step | notes |",
           "| ---: | ---: | ---: | --- |"]
    for r in rows:
        out.append(f"| {r['hidden']} | {r['P']:,} | {fmt_s(r['seconds'])} | {fmt_rounds(r)} |")
    return "\n".join(out)


def exponent_table(series: list[tuple[str, list[dict]]]) -> str:
    out = ["## Fitted exponents (seconds ∝ P^k)", "",
           "| series | points | P range | k (all points) | k (three largest P) |",
           "| --- | ---: | --- | ---: | ---: |"]
    for name, rows in series:
        if len(rows) < 2:
            out.append(f"| {name} | {len(rows)} | – | – | – |")
            continue
        top = fit_exponent(rows[-3:]) if len(rows) > 3 else None
        out.append(f"| {name} | {len(rows)} | {rows[0]['P']:,} … {rows[-1]['P']:,} | **{fit_exponent(rows):.2f}** | "
                   f"{'–' if top is None else f'{top:.2f}'} |")
    return "\n".join(out)


# -------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--quick", action="store_true", help="~10 s sanity run: P ≈ 300, 1,000, 3,000 and H = 8, 16, "
                   "32; ~0.1 s of timing per measurement; no results file")
    p.add_argument("--budget", type=float, default=None, help="seconds of timing per measurement "
                   "(default 2, or 0.1 with --quick; a slower step is still timed once per round)")
    p.add_argument("--full-limit", type=float, default=20.0, help="skip the full Hessian where its predicted "
                   "seconds per step exceed this (default 20)")
    p.add_argument("--out", type=Path, default=None, help="Markdown results file "
                   "(default benchmarks/results/block_newton_scaling_<device>_<threads>t.md; --quick: not written)")
    args = p.parse_args(argv)
    if args.threads < 1:
        p.error("--threads must be >= 1")
    if args.budget is None:
        args.budget = 0.1 if args.quick else 2.0
    if args.budget <= 0 or args.full_limit <= 0:
        p.error("--budget and --full-limit must be > 0")
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)

    started = time.perf_counter()
    print(f"torch {torch.__version__}, device {describe_device(device)}", flush=True)
    widths, hiddens = width_points(args.quick), hidden_points(args.quick)
    check = check_correctness(widths[0], device)
    # untimed warm-up of both code paths (torch.func's first call, kernels paged in)
    measure(widths[0], BLOCK, device, budget=0.0)
    measure(widths[0], None, device, budget=0.0)

    width_rows, full_rows, skipped = [], [], {}
    for point in widths:
        b = measure(point, BLOCK, device, args.budget)
        width_rows.append(b)
        shown = f"  width | d_in={point.d_in} P={b['P']}: b={BLOCK} {fmt_s(b['seconds'])}"
        predicted = 0.0 if not full_rows else full_rows[-1]["seconds"] * (b["P"] / full_rows[-1]["P"]) ** 3
        if predicted > args.full_limit:  # predictions grow with P: once skipped, every larger P is too
            skipped[b["P"]] = predicted
            shown += f", full skipped (predicted {predicted:.0f} s)"
        else:
            f = measure(point, None, device, args.budget)
            full_rows.append(f)
            shown += f", full {fmt_s(f['seconds'])}, ratio {f['seconds'] / b['seconds']:.0f}"
        print(shown, flush=True)
    hidden_rows = []
    for point in hiddens:
        h = measure(point, BLOCK, device, args.budget)
        hidden_rows.append(h)
        print(f"  hidden | H={point.hidden} P={h['P']}: b={BLOCK} {fmt_s(h['seconds'])}", flush=True)
    exponents = [(f"width, b = {BLOCK}", width_rows), ("width, full", full_rows),
                 (f"hidden, b = {BLOCK}", hidden_rows)]
    for name, rows in exponents:
        if len(rows) >= 2:
            print(f"  k [{name}] = {fit_exponent(rows):.2f}", flush=True)
    total = time.perf_counter() - started
    report = (header(args, device, check, total) + "\n\n" + width_table(width_rows + full_rows, skipped) + "\n\n"
              + hidden_table(hidden_rows) + "\n\n" + exponent_table(exponents) + "\n")
    publish(report, name="block_newton_scaling", out=args.out, quick=args.quick, device=device, threads=args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
