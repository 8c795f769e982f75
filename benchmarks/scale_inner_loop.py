"""Benchmark: the scale inner loop, all tasks batched (``adapt``) against backprop2's faithful
one-task-at-a-time mode (``adapt_one_at_a_time``), in tasks adapted per second.

Setting: MLP 2-20-1 with Gaussian units; tasks from ``TeacherTasks.sparse_variation(model,
n_varying=8, spread=0.5, seed=0)``, 100 points each; every task starts from the same
``start = family.mean + 0.3 N(0, I)`` (fixed seed) and descends its data error plus a
``QuarticRegulariser`` (strength 1e-4) fitted to 20 adapted tasks. Configurations:

  faithful      InnerLoop.faithful(max_steps=2000): batches of 50 drawn with replacement,
                warm-started line search, dynamic terminator (both modes get a seeded generator)
  full batch    all 100 points every step, line search, terminator, max_steps=2000
  fixed steps   all 100 points every step, line search, 100 steps, no terminator

each for T = 10, 100 and 1,000 tasks in the batched mode. The one-at-a-time mode is a Python
loop over tasks, so its cost is linear in T: it is timed on the first min(T, 20) of the same
tasks and reported per task. Before timing, on 8 tasks with all points (no randomness), both
modes must give allclose parameters and identical step counts (float64: in float32 the batched
and single-task kernels round differently, and the line search's discrete step-size choices
amplify that), or the script stops.

    python benchmarks/scale_inner_loop.py                  # default run, 1 thread (~3 minutes on 2 cores)
    python benchmarks/scale_inner_loop.py --threads 2
    python benchmarks/scale_inner_loop.py --quick          # ~20 s sanity run, no results file
    python benchmarks/scale_inner_loop.py --device cuda

Writes the table to stdout and to benchmarks/results/scale_inner_loop_<device>_<threads>t.md.
This is a benchmark, not a test: it asserts the two modes agree, nothing about speed.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from backprop2lib.models.mlp import MLP
from backprop2lib.runtime import pick_device
from backprop2lib.scale import AdaptResult, InnerLoop, QuarticRegulariser, adapt, adapt_one_at_a_time
from backprop2lib.tasks.teacher import TeacherTasks
from backprop2lib.timing import time_per_call

from common import device_description, publish  # benchmarks/common.py


SIZES = (2, 20, 1)
ACTIVATION = "gaussian"
N_VARYING, SPREAD, FAMILY_SEED = 8, 0.5, 0
START_NOISE = 0.3
N_POINTS = 100
N_FIT_TASKS = 20
STRENGTH = 1e-4
FIT_LOOP = InnerLoop(max_steps=500, terminate=True)  # full batch, line search, terminator, no regulariser
SEED_START, SEED_FIT, SEED_TASKS, SEED_DRAWS = 1, 2, 3, 4
N_CHECK = 8
RTOL, ATOL = 1e-6, 1e-9  # float64


@dataclass(frozen=True)
class Config:
    name: str
    loop: InnerLoop


def configs(quick: bool) -> list[Config]:
    steps, fixed = (300, 20) if quick else (2000, 100)
    return [
        Config(f"faithful (batch 50, line search, terminator, max {steps} steps)", InnerLoop.faithful(max_steps=steps)),
        Config(f"full batch, line search, terminator, max {steps} steps", InnerLoop(max_steps=steps, terminate=True)),
        Config(f"full batch, line search, {fixed} fixed steps", InnerLoop(max_steps=fixed, terminate=False)),
    ]


# --------------------------------------------------------------------------- problem
@dataclass
class Problem:
    model: MLP
    start: torch.Tensor
    regulariser: QuarticRegulariser
    x: torch.Tensor  # [T_max, N, 2]
    y: torch.Tensor  # [T_max, N, 1]
    fit_result: AdaptResult


def make_problem(n_tasks: int, device: torch.device, dtype: torch.dtype = torch.float32) -> Problem:
    model = MLP(SIZES, activation=ACTIVATION)
    family = TeacherTasks.sparse_variation(model, n_varying=N_VARYING, spread=SPREAD, seed=FAMILY_SEED)
    g = torch.Generator().manual_seed(SEED_START)
    start = (family.mean + START_NOISE * torch.randn(model.n_params, generator=g)).to(device, dtype)
    fit = family.sample(N_FIT_TASKS, N_POINTS, generator=torch.Generator().manual_seed(SEED_FIT), device=device,
                        dtype=dtype)
    fitted = adapt(model, start, fit.x_support, fit.y_support, loop=FIT_LOOP)
    regulariser = QuarticRegulariser.fit(fitted.params.detach(), strength=STRENGTH)
    tasks = family.sample(n_tasks, N_POINTS, generator=torch.Generator().manual_seed(SEED_TASKS), device=device,
                          dtype=dtype)
    return Problem(model, start, regulariser, tasks.x_support, tasks.y_support, fitted)


def run_mode(mode: str, problem: Problem, loop: InnerLoop, n: int, device: torch.device) -> AdaptResult:
    """One adaptation of the first ``n`` tasks; a freshly seeded generator, so every call does the same work."""
    fn = adapt if mode == "batched" else adapt_one_at_a_time
    gen = torch.Generator(device=device).manual_seed(SEED_DRAWS)
    with torch.no_grad():
        return fn(problem.model, problem.start, problem.x[:n], problem.y[:n], loop=loop,
                  regulariser=problem.regulariser, generator=gen)


# ------------------------------------------------------------------------ correctness
def check_correctness(device: torch.device, cfgs: list[Config]) -> list[str]:
    """Both modes on N_CHECK tasks with all points: same parameters, same steps. float64: see the docstring."""
    problem = make_problem(N_CHECK, device, torch.float64)
    lines, failures = [], []
    for cfg in cfgs:
        if cfg.loop.batch_size is not None:
            continue  # random batches: the modes draw different streams; compared in distribution below
        a = run_mode("batched", problem, cfg.loop, N_CHECK, device)
        b = run_mode("one", problem, cfg.loop, N_CHECK, device)
        close = torch.allclose(a.params, b.params, rtol=RTOL, atol=ATOL)
        same_steps = torch.equal(a.steps, b.steps)
        diff = float((a.params - b.params).abs().max())
        line = (f"[{cfg.name}] {N_CHECK} tasks, all points, float64: params allclose (rtol {RTOL:g}, atol {ATOL:g}): "
                f"{'yes' if close else 'no'} (max |diff| {diff:.1e}); steps identical: "
                f"{'yes' if same_steps else 'no'} (batched {a.steps.tolist()}, one at a time {b.steps.tolist()})")
        print(line, flush=True)
        lines.append(line)
        if not (close and same_steps):
            failures.append(cfg.name)
    if failures:
        sys.exit("FAILED: adapt (batched) and adapt_one_at_a_time disagree on the same deterministic problem, so "
                 "their timings would compare different computations: " + "; ".join(failures))
    return lines


# ---------------------------------------------------------------------------- timing
def measure(mode: str, problem: Problem, loop: InnerLoop, n: int, device: torch.device, rounds: int,
            long_s: float) -> dict:
    """Seconds per adaptation of ``n`` tasks: median over up to ``rounds`` rounds of one call each
    (backprop2lib.timing.time_per_call, repeats=1, warmup=0); a round longer than ``long_s`` is not repeated."""
    holder: list[AdaptResult] = []

    def call():
        holder[:] = [run_mode(mode, problem, loop, n, device)]

    per_round = []
    for _ in range(rounds):
        per_round.append(time_per_call(call, repeats=1, warmup=0, rounds=1, device=device))
        if per_round[-1] > long_s:
            break
    r = holder[0]
    steps = r.steps.double().cpu()
    return dict(mode=mode, n=n, seconds=statistics.median(per_round), rounds=per_round,
                tasks_per_s=n / statistics.median(per_round), steps=steps, max_steps=int(steps.max()),
                error_after=r.error_after.double().cpu(), diverged=int(r.diverged.sum()))


def fmt_steps(steps: torch.Tensor) -> str:
    sd = float(steps.std(unbiased=False)) if steps.numel() > 1 else 0.0
    return f"{float(steps.mean()):.0f} ± {sd:.0f}"


def fmt_rounds(m: dict) -> str:
    return "/".join(f"{s:.3g}" for s in m["rounds"]) + " s"


# --------------------------------------------------------------------------- reporting
def header(args, device: torch.device, problem: Problem, checks: list[str], one_max: int,
           total_s: float | None) -> str:
    dev = device_description(device)
    fitted = problem.fit_result
    lines = [
        "# Scale inner loop: batched over tasks against one task at a time",
        "",
        f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- torch {torch.__version__}, Python {platform.python_version()}",
        f"- device: {dev}; torch threads: {args.threads}",
        f"- setting: MLP {'-'.join(map(str, SIZES))} {ACTIVATION}; TeacherTasks.sparse_variation("
        f"n_varying={N_VARYING}, spread={SPREAD}, seed={FAMILY_SEED}), {N_POINTS} points per task; "
        f"start = family mean + {START_NOISE} N(0, I) "
        f"(seed {SEED_START}), shared by every task; objective = data error + QuarticRegulariser (consistent, "
        f"strength {STRENGTH:g}) fitted to {N_FIT_TASKS} tasks adapted from start (full batch, line search, "
        f"terminator, max {FIT_LOOP.max_steps} steps, no regulariser: mean {float(fitted.steps.double().mean()):.0f} "
        f"steps); float32; line search and terminator with backprop2's defaults",
        f"- batched: `adapt` on all T tasks at once (the Python loop runs over steps; a task the terminator stopped "
        "is frozen but still computed until the last one stops, and every line-search round evaluates every task "
        "until the last task's search ends); one at a time: `adapt_one_at_a_time` (backprop2's faithful mode, "
        f"a Python loop over tasks), timed on the first n = min(T, {one_max}) of the same tasks and reported per task, "
        "since its cost is linear in T (the n-task measurement is shared by the rows with equal n)",
        "- random batches (faithful rows): each mode gets a generator seeded the same way, but the batched mode "
        "draws every task's batch at once and the one-at-a-time mode task after task, so the draws, and the step "
        "counts the terminator decides, agree in distribution only. Full-batch rows have no randomness, yet in "
        "float32 the two modes' trajectories still part (batched and single-task kernels round differently and "
        "the line search's discrete step-size choices amplify it), so their steps too agree in distribution, "
        "not task by task; in float64 they are identical (the correctness check)",
        "- tasks/s: tasks ÷ seconds for one adaptation; seconds: median over rounds of one call "
        "(backprop2lib.timing.time_per_call, repeats 1, warmup 0); up to "
        f"{args.rounds} round(s), a round over {args.long:g} s is not repeated; the last column lists the rounds"
        f"{'; --quick' if args.quick else ''}",
        "- ratio: batched tasks/s ÷ one-at-a-time tasks/s (> 1: batching pays)",
        "- steps: mean ± sd over tasks of the steps each task took; 'batched, same n' is the batched run's mean "
        "over the n tasks the one-at-a-time mode ran; loop iterations: the batched run's longest task (what it "
        "pays for every task); error: median data error after adaptation over the n tasks both modes ran",
        "- the one-at-a-time mode is the same code as the batched mode with T = 1, so the ratio measures what "
        "batching tasks buys in this library, not a comparison with backprop2's own (MATLAB) code",
    ]
    if total_s is not None:
        lines.append(f"- total runtime of this benchmark: {total_s:.0f} s")
    lines += ["", "Correctness (before timing; the same deterministic problem in both modes):", ""]
    lines += [f"- {c}" for c in checks]
    return "\n".join(lines)


def table(rows: list[dict]) -> str:
    out = ["| configuration | T | batched tasks/s | one at a time tasks/s (n) | ratio | steps batched (all T) | "
           "steps batched, same n | steps one at a time | batched loop iterations | error (same n) batched / one | "
           "rounds batched; one at a time |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for row in rows:
        cfg, T = row["config"], row["T"]
        b, o = row["batched"], row["one"]
        ratio = b["tasks_per_s"] / o["tasks_per_s"]
        out.append(
            f"| {cfg} | {T} | {b['tasks_per_s']:.3g} | {o['tasks_per_s']:.3g} ({o['n']}) | **{ratio:.2f}** | "
            f"{fmt_steps(b['steps'])} | {fmt_steps(b['steps'][:o['n']])} | {fmt_steps(o['steps'])} | "
            f"{b['max_steps']} | {float(b['error_after'][:o['n']].median()):.2e} / "
            f"{float(o['error_after'].median()):.2e} | "
            f"{fmt_rounds(b)}; {fmt_rounds(o)} |")
    return "\n".join(out)


# -------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--quick", action="store_true", help="~20 s sanity run: T = 10 and 50, max 300 steps (20 fixed), "
                   "one at a time on min(T, 5) tasks, one round; no results file")
    p.add_argument("--rounds", type=int, default=2, help="rounds per measurement (default 2; --quick: 1)")
    p.add_argument("--long", type=float, default=15.0, help="a round longer than this many seconds is not "
                   "repeated (default 15)")
    p.add_argument("--out", type=Path, default=None, help="Markdown results file "
                   "(default benchmarks/results/scale_inner_loop_<device>_<threads>t.md; --quick: not written)")
    args = p.parse_args(argv)
    if args.threads < 1:
        p.error("--threads must be >= 1")
    if args.rounds < 1:
        p.error("--rounds must be >= 1")
    if args.quick:
        args.rounds = 1
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    task_counts = (10, 50) if args.quick else (10, 100, 1000)
    one_max = 5 if args.quick else 20

    started = time.perf_counter()
    print(f"torch {torch.__version__}, device {device}, {args.threads} thread(s)", flush=True)
    cfgs = configs(args.quick)
    checks = check_correctness(device, cfgs)
    problem = make_problem(max(task_counts), device)
    # untimed warm-up: kernels' code paged in and one-time initialisation done before the first timed call
    run_mode("batched", problem, InnerLoop(max_steps=5, terminate=True), 2, device)

    rows, one_cache = [], {}
    for i, cfg in enumerate(cfgs):
        for T in task_counts:
            n = min(T, one_max)
            if (i, n) not in one_cache:
                one_cache[i, n] = measure("one", problem, cfg.loop, n, device, args.rounds, args.long)
            one = one_cache[i, n]
            batched = measure("batched", problem, cfg.loop, T, device, args.rounds, args.long)
            rows.append(dict(config=cfg.name, T=T, batched=batched, one=one))
            print(f"  {cfg.name} | T={T}: batched {batched['tasks_per_s']:.3g} tasks/s "
                  f"(steps {fmt_steps(batched['steps'])}, {fmt_rounds(batched)}), one at a time "
                  f"{one['tasks_per_s']:.3g} tasks/s on {n} (steps {fmt_steps(one['steps'])}, {fmt_rounds(one)}), "
                  f"ratio {batched['tasks_per_s'] / one['tasks_per_s']:.2f}", flush=True)
            for m in (batched, one):
                if m["diverged"]:
                    print(f"    warning: {m['diverged']} task(s) diverged in the {m['mode']} mode", flush=True)
    total = time.perf_counter() - started
    report = header(args, device, problem, checks, one_max, total) + "\n\n" + table(rows) + "\n"
    publish(report, name="scale_inner_loop", out=args.out, quick=args.quick, device=device, threads=args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
