"""Benchmark: throughput of recognition by reconstruction, in test images classified per second, with
all 10 class models adapting to every image (``backprop2lib.recognition.classify``).

Setting: the bundled MNIST test split (``bundled_split(seed=0).test``, 1,000 images, 100 per
digit) as regression tasks (``images_to_tasks``: 784 pixels, input the coordinates, target the grey
level). Class models: MLP 2-H-1 Gaussian (H = --hidden, default 20), ten random but realistic
starts μ_c = ``model.init(10, scheme="normal")`` (backprop2's N(0, 1) initialisation, seeded),
flattened. Two priors, because the adaptation's cost should hardly depend on the prior:

  initialisation   adapt from μ_c only (MAML, Reptile, pretrained)
  quadratic        plus backprop2's regulariser c Σ (w − μ_c)² / σ², σ² = 0.1, c = 0.01

Each image becomes 10 adaptation tasks (one per class model) of ``steps`` full-batch gradient
steps (default 10), with backprop2's line search (one step size per task; ``--lr search``) or a
fixed step (``--lr 0.3``); both by default. ``chunk`` images are adapted at once (tasks = 10 ×
chunk per batched call); the sweep runs chunk = 1, 2, 4, 8, 16, 64, 256 on the same first N
test images (default 200), then classifies the whole test split at each configuration's fastest
chunk and reports the total seconds.

    python benchmarks/recognition_throughput.py                  # full run, 1 thread (~10 minutes on 2 idle cores)
    python benchmarks/recognition_throughput.py --threads 2
    python benchmarks/recognition_throughput.py --quick          # a few seconds' sanity run, no results file
    python benchmarks/recognition_throughput.py --lr search --priors quadratic --chunks 16 64
    python benchmarks/recognition_throughput.py --device cuda
    python benchmarks/recognition_throughput.py --families codes  # the code class models only

Code class models (``--families codes``, chapter 5's second family): ``few_shot.code_scores`` with the stored
cells' experiment (``recognition.catalogue.code_experiment("paper")``: 8-dimensional codes, a (32, 32) Gaussian
network on 16 Fourier frequencies, 8 starts × 5 steps then 20 refinement steps on 128 of the adapted pixels, scored
on the held-out half), random class models (``CodeClassModels.initial``) for one training seed (10 class models) and
three (30, as the stored cells score them), at several chunks; and with the search over 27 moves of the pictures
(the moved-digits table's grid and settings, one seed).

Pixel baselines (``--families baselines``, the classifiers chapter 5 compares against: ``catalogue.BASELINE_NAMES``
from ``recognition.baselines.BASELINES``), fitted on n = 10 training images per digit (``pool.per_class(10,
seed=0)``), then timed predicting the same test images; the ratio line says how many times more images per second
each baseline classifies than the code class models (one seed, fastest chunk) in this run.

Writes the tables to stdout and to benchmarks/results/recognition_throughput_<device>_<threads>t.md.
This is a benchmark, not a test: it asserts that every classification is finite (``classify``
raises on a diverged adaptation) and nothing about speed.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from backprop2lib.data.mnist import bundled_split
from backprop2lib.models.mlp import MLP
from backprop2lib.recognition import catalogue
from backprop2lib.recognition.baselines import BASELINES
from backprop2lib.recognition.classifier import Classification, classify
from backprop2lib.recognition.codes import CodeClassModels
from backprop2lib.recognition.few_shot import code_scores, pool_and_test
from backprop2lib.recognition.images import images_to_tasks
from backprop2lib.recognition.priors import ClassPriors
from backprop2lib.runtime import describe_device, pick_device
from backprop2lib.timing import time_per_call

from common import NOISY, device_description, fmt_s, noisy_note, publish  # benchmarks/common.py


N_CLASSES = 10
ACTIVATION = "gaussian"
SPLIT_SEED = 0
VARIANCE, STRENGTH = 0.1, 0.01  # quadratic prior: σ², c
PRIORS = ("initialisation", "quadratic")
FAMILIES = ("full", "codes", "baselines")
BASELINE_TRAIN_PER_DIGIT = 10
CODE_CHUNKS = (16, 64, 256)
CODE_SEEDS = (1, 3)
CHUNKS = (1, 2, 4, 8, 16, 64, 256)
QUICK_CHUNKS = (1, 8)
QUICK_IMAGES, QUICK_FULL_IMAGES = 8, 16


# --------------------------------------------------------------------------- problem
def parse_lr(text: str) -> float | None:
    if text.lower() in ("search", "none", "line-search"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'search' or a positive step size, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"a fixed step size must be positive and finite, got {text!r}")
    return value


def lr_name(lr: float | None) -> str:
    return "line search" if lr is None else f"fixed step {lr:g}"


def make_priors(model: MLP, method: str, seed: int, device: torch.device) -> ClassPriors:
    """Ten random class starts μ_c ~ N(0, I) (backprop2's init), seeded; σ² = 0.1, c = 0.01 for quadratic."""
    g = torch.Generator().manual_seed(seed)
    mean = model.flatten(model.init(N_CLASSES, scheme="normal", generator=g)).to(device)
    if method == "initialisation":
        return ClassPriors("initialisation", mean)
    return ClassPriors("quadratic", mean, torch.full_like(mean, VARIANCE), STRENGTH)


# ---------------------------------------------------------------------------- timing
def run_classify(model, priors, grid, y, steps, lr, chunk) -> Classification:
    """One classification; stops the script, naming the setting, if it is not finite."""
    try:
        res = classify(model, priors, grid, y, steps=steps, lr=lr, chunk=chunk)
    except FloatingPointError as e:
        sys.exit(f"FAILED: {priors.method} prior, {lr_name(lr)}, chunk {chunk}: {e}")
    if not (bool(torch.isfinite(res.losses).all()) and bool(torch.isfinite(res.initial_losses).all())):
        sys.exit(f"FAILED: {priors.method} prior, {lr_name(lr)}, chunk {chunk}: non-finite reconstruction errors")
    return res


def measure(model, priors, grid, y, steps, lr, chunk, rounds, device, warm_up: bool) -> dict:
    """Seconds to classify all images of ``y``: median over ``rounds`` timed calls of ``classify``
    (``backprop2lib.timing.time_per_call``, repeats 1, warmup 0, one round each, so the spread is seen),
    after one untimed call on min(N, 2 × chunk) images (kernels and allocator at this chunk's sizes)."""
    N = y.shape[0]
    if warm_up:
        run_classify(model, priors, grid, y[:min(N, 2 * chunk)], steps, lr, chunk)
    out: list[Classification] = []

    def call():
        out.append(run_classify(model, priors, grid, y, steps, lr, chunk))

    per_round = [time_per_call(call, repeats=1, warmup=0, rounds=1, device=device) for _ in range(rounds)]
    seconds = statistics.median(per_round)
    return dict(method=priors.method, lr=lr, chunk=chunk, N=N, seconds=seconds, rounds=per_round,
                images_per_s=N / seconds, ms_per_task_step=seconds / (N * N_CLASSES * max(steps, 1)) * 1e3,
                result=out[-1])


def agreement(rows: list[dict]) -> str:
    """How far the losses at each chunk are from those at the largest chunk (same images, same settings)."""
    ref = max(rows, key=lambda r: r["chunk"])["result"]
    rel, same = 0.0, 1.0
    for r in rows:
        res = r["result"]
        rel = max(rel, float(((res.losses - ref.losses).abs() / ref.losses.abs().clamp_min(1e-12)).max()))
        same = min(same, float((res.predicted == ref.predicted).float().mean()))
    return f"max rel. diff {rel:.1e}, same prediction {same:.1%}"


def fmt_rounds(m: dict) -> str:
    lo, hi = min(m["rounds"]), max(m["rounds"])
    if len(m["rounds"]) == 1:
        return "1 round (spread not measured)"
    noisy = noisy_note(m["rounds"])
    return f"{len(m['rounds'])} rounds, {fmt_s(lo)} … {fmt_s(hi)}{noisy}"


# -------------------------------------------------------------------------- reporting
def header(args, device: torch.device, model: MLP, n_test: int, total_s: float | None, load: tuple) -> str:
    dev = device_description(device)
    lrs = ", ".join(lr_name(lr) for lr in args.lr)
    lines = [
        "# Recognition by reconstruction: test images classified per second (10 class models adapting per image)",
        "",
        f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- torch {torch.__version__}, numpy {np.__version__}, Python {platform.python_version()}",
        f"- device: {dev}; torch threads: {args.threads}; load average at start {load[0]:.1f} / {load[1]:.1f} / "
        f"{load[2]:.1f} (1 / 5 / 15 min)",
        f"- images: `bundled_split(seed={SPLIT_SEED}).test` ({n_test:,} images) as tasks by `images_to_tasks` "
        "(784 pixels each, input the coordinates, target the grey level), float32; the chunk sweep uses the first "
        f"{args.images} of them",
        f"- class models: MLP {'-'.join(map(str, model.sizes))} {ACTIVATION} (P = {model.n_params}), ten starts "
        f"μ_c = `model.init({N_CLASSES}, scheme=\"normal\", generator=manual_seed({args.seed}))` flattened (random, "
        "not trained: the cost does not depend on what the models learned); priors: "
        + ", ".join("initialisation (start only)" if m == "initialisation" else
                    f"quadratic (σ² = {VARIANCE:g}, c = {STRENGTH:g})" for m in args.priors),
        f"- one classification: `classify(model, priors, grid, y, steps={args.steps}, lr=..., chunk=...)`: every "
        f"image adapted by all {N_CLASSES} class models ({N_CLASSES} tasks per image, {N_CLASSES} × chunk tasks per "
        f"batched call), {args.steps} full-batch gradient steps each; step sizes: {lrs} (line search: backprop2's, "
        "one step size per task, extra error evaluations per step)",
        f"- seconds: median over {args.rounds} timed classification(s) of all the images "
        "(`backprop2lib.timing.time_per_call`, repeats 1, warmup 0), after one untimed classification of "
        f"min(N, 2 × chunk) images at the same chunk{'; --quick' if args.quick else ''}; images/s = N ÷ "
        f"seconds; ms per (image, class, step) = seconds ÷ (N × {N_CLASSES} × {args.steps}) × 1000",
        "- agreement: the adapted losses at every chunk against those at the largest chunk (the same images and "
        "settings; only the batching differs, so any difference is float rounding, amplified by the line "
        "search's discrete step-size choices)",
        f"- whole test split: each configuration's fastest chunk in the sweep, {args.full_rounds} timed "
        "classification(s) after one untimed one of 2 × chunk images; predicted = the sweep's images/s at that "
        "chunk scaled to the split",
    ]
    if device.type == "cpu" and (args.threads >= (os.cpu_count() or 1) or load[0] > 0.5 * (os.cpu_count() or 1)):
        lines.append(f"- caution: {args.threads} thread(s) on {os.cpu_count()} cores with other load on the "
                     "machine: small batched ops wait for the slowest thread (worst at small chunks); rows marked "
                     f"noisy (slowest round over {NOISY:g}× the fastest) are not to be trusted, and only ratios "
                     "within this run compare")
    if total_s is not None:
        lines.append(f"- total runtime of this benchmark: {total_s:.0f} s")
    return "\n".join(lines)


def sweep_table(rows: list[dict], args) -> str:
    out = [f"## Chunk sweep: the first {args.images} test images", "",
           "| step size | prior | chunk | tasks per call | images/s | ms per (image, class, step) | seconds | "
           "median error before → after | notes |",
           "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    for lr in args.lr:
        for method in args.priors:
            group = [r for r in rows if r["lr"] == lr and r["method"] == method]
            best = max(group, key=lambda r: r["images_per_s"])
            for r in group:
                res = r["result"]
                n = min(r["chunk"], r["N"])
                ips = f"**{r['images_per_s']:.3g}**" if r is best else f"{r['images_per_s']:.3g}"
                out.append(f"| {lr_name(lr)} | {method} | {r['chunk']} | {N_CLASSES * n:,} | {ips} | "
                           f"{r['ms_per_task_step']:.3g} | {fmt_s(r['seconds'])} | "
                           f"{float(res.initial_losses.median()):.3g} → {float(res.losses.median()):.3g} | "
                           f"{fmt_rounds(r)} |")
            out.append(f"| {lr_name(lr)} | {method} | agreement across chunks | | | | | | {agreement(group)} |")
    return "\n".join(out)


def full_table(rows: list[dict], sweep: list[dict], n_test: int, args) -> str:
    title = (f"## Whole test split ({n_test:,} images)" if not args.quick
             else f"## 'Whole test split' (--quick: its first {rows[0]['N'] if rows else 0} images)")
    out = [title, "",
           "| step size | prior | chunk | total seconds | predicted from the sweep | images/s | "
           "ms per (image, class, step) | notes |",
           "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        s = next(x for x in sweep if x["lr"] == r["lr"] and x["method"] == r["method"] and x["chunk"] == r["chunk"])
        out.append(f"| {lr_name(r['lr'])} | {r['method']} | {r['chunk']} | **{r['seconds']:.3g} s** | "
                   f"{r['N'] / s['images_per_s']:.3g} s | {r['images_per_s']:.3g} | {r['ms_per_task_step']:.3g} | "
                   f"{fmt_rounds(r)} |")
    return "\n".join(out)


def edit_grid() -> list:
    """The moved-digits table's search grid (catalogue's ``_robustness("paper")``), as ((dx, dy), radians)."""
    r = catalogue._robustness("paper")
    pixel = 2 / 27
    return [((dx * pixel, dy * pixel), math.radians(a)) for dx in r["edit_shifts"] for dy in r["edit_shifts"]
            for a in r["edit_angles"]]


def measure_codes(experiment, models: CodeClassModels, images: torch.Tensor, chunk: int, rounds: int, device,
                  label: str, edits=None, **overrides) -> dict:
    """Seconds to score ``images`` with every class model of ``models`` (``code_scores``), median over ``rounds``
    timed calls after one untimed call on min(N, 2 × chunk) images."""
    N = images.shape[0]
    code_scores(models, experiment, images[:min(N, 2 * chunk)], chunk=chunk, edits=edits, **overrides)
    out = []

    def call():
        out.append(code_scores(models, experiment, images, chunk=chunk, edits=edits, **overrides))

    per_round = [time_per_call(call, repeats=1, warmup=0, rounds=1, device=device) for _ in range(rounds)]
    fit = out[-1]
    if not bool(torch.isfinite(fit.held_error).all()):
        sys.exit(f"FAILED: code class models, {label}, chunk {chunk}: non-finite held-out errors")
    seconds = statistics.median(per_round)
    return dict(label=label, classes=models.n_classes, chunk=chunk, N=N, seconds=seconds, rounds=per_round,
                images_per_s=N / seconds, ms_per_pair=seconds / (N * models.n_classes) * 1e3)


def fastest_one_seed_code(code_rows: list[dict]) -> dict | None:
    """The code class models' fastest row as stored with one seed (10 class models): what the ratios divide by."""
    one = [r for r in code_rows if r["classes"] == N_CLASSES and r["label"] == "as stored"]
    return max(one, key=lambda r: r["images_per_s"]) if one else None


def codes_table(rows: list[dict], experiment, full_rows: list[dict], args) -> str:
    e = experiment
    out = [f"## Code class models: the first {args.images} test images", "",
           f"`code_scores` with `catalogue.code_experiment(\"paper\")`: {e.reconstructor.describe()} "
           f"(P = {e.reconstructor.n_params} per class), {e.starts} starts × {e.steps} steps then {e.refine} "
           f"refinement steps on {e.points} of the adapted pixels, scored on the held-out {e.held_fraction:g} of "
           "each image; random class models (the cost does not depend on what they learned).", "",
           "| scoring | class models (seeds × 10) | chunk | images/s | ms per (image, class model) | seconds | notes |",
           "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        out.append(f"| {r['label']} | {r['classes']} | {r['chunk']} | {r['images_per_s']:.3g} | "
                   f"{r['ms_per_pair']:.3g} | {fmt_s(r['seconds'])} | {fmt_rounds(r)} |")
    best_code = fastest_one_seed_code(rows)
    if best_code and full_rows:
        lines = []
        for f in full_rows:
            lines.append(f"{lr_name(f['lr'])}, {f['method']}: {f['images_per_s'] / best_code['images_per_s']:.3g}×")
        out += ["", f"Full-parameter class models ({args.steps} steps, the sweep's fastest chunk) ÷ code class "
                "models (one seed, fastest chunk), images/s in this run: " + "; ".join(lines) + "."]
    return "\n".join(out)


def measure_baseline(name: str, train, images: torch.Tensor, rounds: int, device) -> dict:
    """Seconds to fit baseline ``name`` on ``train`` (one timed fit after an untimed one) and to predict ``images`` (median over ``rounds``
    timed calls after one untimed call)."""
    BASELINES[name]().fit(train.pixels(), train.labels)  # untimed: the first fit imports scikit-learn
    start = time.perf_counter()
    fitted = BASELINES[name]().fit(train.pixels(), train.labels)
    fit_s = time.perf_counter() - start
    x = images.cpu()
    fitted.predict(x[:2])

    def call():
        fitted.predict(x)

    per_round = [time_per_call(call, repeats=1, warmup=0, rounds=1, device=device) for _ in range(rounds)]
    seconds = statistics.median(per_round)
    return dict(label=name, N=x.shape[0], fit_s=fit_s, seconds=seconds, rounds=per_round,
                images_per_s=x.shape[0] / seconds)


def baselines_table(rows: list[dict], code_rows: list[dict], args) -> str:
    out = [f"## Pixel baselines: the first {args.images} test images", "",
           f"Fitted on {BASELINE_TRAIN_PER_DIGIT} training images per digit (`pool.per_class("
           f"{BASELINE_TRAIN_PER_DIGIT}, seed=0)`), on the CPU in float64 (numpy / scikit-learn), then predicting.", "",
           "| baseline | fit seconds | images/s predicting | seconds | notes |",
           "| --- | ---: | ---: | ---: | --- |"]
    for r in rows:
        out.append(f"| {r['label']} | {fmt_s(r['fit_s'])} | {r['images_per_s']:.3g} | {fmt_s(r['seconds'])} | "
                   f"{fmt_rounds(r)} |")
    best_code = fastest_one_seed_code(code_rows)
    if best_code and rows:
        ratios = "; ".join(f"{r['label']}: {r['images_per_s'] / best_code['images_per_s']:.3g}×" for r in rows)
        out += ["", "Images/s predicting ÷ the code class models' (one seed, chunk "
                f"{best_code['chunk']}, {best_code['images_per_s']:.3g} images/s) in this run: {ratios}."]
    return "\n".join(out)


# ------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--quick", action="store_true", help=f"a few seconds' sanity run: N = {QUICK_IMAGES} images, "
                   f"chunks {', '.join(map(str, QUICK_CHUNKS))}, 1 round, 'whole split' = the first "
                   f"{QUICK_FULL_IMAGES} test images; no results file")
    p.add_argument("--hidden", type=int, default=20, help="hidden units of the class models' MLP 2-H-1 (default 20)")
    p.add_argument("--steps", type=int, default=10, help="adaptation steps per (image, class) (default 10)")
    p.add_argument("--lr", type=parse_lr, nargs="+", default=None, metavar="LR",
                   help="step sizes to measure, each 'search' (backprop2's line search, lr=None) or a fixed "
                   "positive step (default: search 0.3)")
    p.add_argument("--priors", nargs="+", choices=PRIORS, default=list(PRIORS), help="class priors to measure "
                   "(default: both)")
    p.add_argument("--chunks", type=int, nargs="+", default=None, help="images adapted at once "
                   f"(default {' '.join(map(str, CHUNKS))}; --quick: {' '.join(map(str, QUICK_CHUNKS))})")
    p.add_argument("--images", type=int, default=None, help="test images N for the chunk sweep (default 200; "
                   f"--quick: {QUICK_IMAGES})")
    p.add_argument("--rounds", type=int, default=None, help="timed classifications per sweep point (default 3; "
                   "--quick: 1)")
    p.add_argument("--full-rounds", type=int, default=1, help="timed classifications of the whole test split "
                   "(default 1)")
    p.add_argument("--no-full", action="store_true", help="skip the whole-test-split measurement")
    p.add_argument("--seed", type=int, default=0, help="seed of the random class starts (default 0)")
    p.add_argument("--families", nargs="+", choices=FAMILIES, default=list(FAMILIES),
                   help="full-parameter class models, code class models, pixel baselines (default: all)")
    p.add_argument("--out", type=Path, default=None, help="Markdown results file "
                   "(default benchmarks/results/recognition_throughput_<device>_<threads>t.md; --quick: not written)")
    args = p.parse_args(argv)
    args.lr = [None, 0.3] if args.lr is None else list(dict.fromkeys(args.lr))
    args.priors = list(dict.fromkeys(args.priors))
    args.chunks = sorted(set(args.chunks or (QUICK_CHUNKS if args.quick else CHUNKS)))
    if args.images is None:
        args.images = QUICK_IMAGES if args.quick else 200
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    for name in ("threads", "hidden", "steps", "images", "rounds", "full_rounds"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.chunks[0] < 1:
        p.error("--chunks must be >= 1")
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)

    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    started = time.perf_counter()
    print(f"torch {torch.__version__}, device {describe_device(device)}, load average {load[0]:.1f}", flush=True)
    test = bundled_split(seed=SPLIT_SEED).test
    x, y = images_to_tasks(test, device=device)
    grid = x[0]  # one coordinate grid [784, 2] for every image
    n_test = y.shape[0]
    if args.images > n_test:
        p.error(f"--images: the test split has {n_test} images")
    model = MLP((2, args.hidden, 1), activation=ACTIVATION)
    priors = {m: make_priors(model, m, args.seed, device) for m in args.priors}
    sweep_y = y[:args.images]

    rows = []
    for lr in args.lr if "full" in args.families else []:
        for method in args.priors:
            for chunk in args.chunks:
                r = measure(model, priors[method], grid, sweep_y, args.steps, lr, chunk, args.rounds, device,
                            warm_up=True)
                rows.append(r)
                print(f"  {lr_name(lr):15s} {method:14s} chunk {chunk:4d}: {r['images_per_s']:8.3g} images/s, "
                      f"{r['ms_per_task_step']:.3g} ms per (image, class, step) ({fmt_rounds(r)})", flush=True)

    full = []
    if not args.no_full and rows:
        full_y = y[:QUICK_FULL_IMAGES] if args.quick else y
        for lr in args.lr:
            for method in args.priors:
                best = max((r for r in rows if r["lr"] == lr and r["method"] == method),
                           key=lambda r: r["images_per_s"])
                r = measure(model, priors[method], grid, full_y, args.steps, lr, best["chunk"], args.full_rounds,
                            device, warm_up=True)
                full.append(r)
                print(f"  whole split ({r['N']} images) {lr_name(lr)}, {method}, chunk {best['chunk']}: "
                      f"{r['seconds']:.3g} s ({r['images_per_s']:.3g} images/s)", flush=True)

    code_rows = []
    if "codes" in args.families:
        experiment = catalogue.code_experiment("paper")
        images = test.pixels(device=device)[:args.images]
        chunks = (8,) if args.quick else CODE_CHUNKS
        for seeds in CODE_SEEDS:
            models = CodeClassModels.initial(experiment.reconstructor, N_CLASSES * seeds, seed=args.seed,
                                             device=device)
            for chunk in chunks:
                r = measure_codes(experiment, models, images, chunk, args.rounds, device, "as stored")
                code_rows.append(r)
                print(f"  codes, {seeds} seed(s), chunk {chunk:4d}: {r['images_per_s']:8.3g} images/s", flush=True)
        search = catalogue._robustness("paper")["search_adaptation"]
        models = CodeClassModels.initial(experiment.reconstructor, N_CLASSES, seed=args.seed, device=device)
        r = measure_codes(experiment, models, images[:max(2, args.images // 10)], chunks[0], args.rounds, device,
                          f"+ search over {len(edit_grid())} moves ({search['starts']} starts, {search['refine']} "
                          f"refinement steps, {search['points']} pixels)", edits=edit_grid(), **search)
        code_rows.append(r)
        print(f"  codes + edit search: {r['images_per_s']:8.3g} images/s", flush=True)

    baseline_rows = []
    if "baselines" in args.families:
        pool, _ = pool_and_test()
        train = pool.per_class(BASELINE_TRAIN_PER_DIGIT, seed=0)
        images = test.pixels()[:args.images]
        for name in catalogue.BASELINE_NAMES:
            r = measure_baseline(name, train, images, args.rounds, device)
            baseline_rows.append(r)
            print(f"  {name}: fit {fmt_s(r['fit_s'])}, {r['images_per_s']:8.3g} images/s predicting", flush=True)

    total = time.perf_counter() - started
    report = header(args, device, model, n_test, total, load) + "\n\n"
    if rows:
        report += sweep_table(rows, args) + "\n"
    if full:
        report += "\n" + full_table(full, rows, n_test, args) + "\n"
    if code_rows:
        report += "\n" + codes_table(code_rows, catalogue.code_experiment("paper"), full, args) + "\n"
    if baseline_rows:
        report += "\n" + baselines_table(baseline_rows, code_rows, args) + "\n"
    publish(report, name="recognition_throughput", out=args.out, quick=args.quick, device=device,
            threads=args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
