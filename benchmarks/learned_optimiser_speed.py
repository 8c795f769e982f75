"""Benchmark: optimisee steps per second during meta-training of the coordinatewise learned optimiser
(Andrychowicz et al. 2016) on MNIST: the library's implementation before and after its speed work,
with and without ``torch.compile``, against a per-parameter-tensor loop.

Problem: ``MNISTNets.sample(B, bundled_split(seed=0).train)``: B MLPs 784 → 20 sigmoid → 10,
cross-entropy, minibatches of 128, P = 15,910 coordinates each. Optimiser: ``CoordinatewiseOptimiser``
(2-layer LSTM, 20 units, preprocessing p = 10, output scale 0.1); meta-optimiser Adam 1e-3.
One truncation = 20 optimisee steps, each

    grad = problems.loss_and_grad(θ.detach(), t)          (no graph: ∇ is an input)
    update, state = net(grad, state); θ = θ + update
    meta_loss += problems.loss(θ, t + 1).mean()

then meta_loss.backward(), the Adam step on φ, and θ and the state detached. Implementations:

  rows        the library before its speed work: every coordinate in one batch axis, the state as
              [B·P, 20] rows, PyTorch's nn.LSTMCell per layer (its gate slices are strided)
  flattened   the library now: the same batch axis, the state coordinate-last [20, B·P] and the cell
              written out on contiguous gate blocks (backprop2lib.learned.optimiser.lstm_cell)
  compiled    the same under torch.compile (CoordinatewiseOptimiser.compile), as the stored
              meta-training jobs run it
  per-tensor  how popular ports do it: the same weights (state dict copied), θ kept as the list
              (W1, b1, W2, b2), each tensor with its own gradient slice, its own hidden state and
              its own cell calls (4 tensors × 2 layers = 8 calls per step), updated on its own

Before timing, both run 3 steps in float64 on a tiny batch from the same start and must give the
same updates (max |diff| < 1e-10) and the same meta-gradient, or the script stops. At each B the
implementations (and, at the second B, the flattened GRU) are built side by side and timed in turn,
one truncation each per pass, so the machine's drifts hit them alike; seconds per truncation is the
median over passes (``backprop2lib.timing.time_per_call``), optimisee steps/s = B × 20 ÷ it.

    python benchmarks/learned_optimiser_speed.py                  # full run, 2 threads (~4 minutes on 2 cores)
    python benchmarks/learned_optimiser_speed.py --threads 1
    python benchmarks/learned_optimiser_speed.py --quick          # ~30 s sanity run, no results file
    python benchmarks/learned_optimiser_speed.py --sizes 1 4      # fewer batch sizes
    python benchmarks/learned_optimiser_speed.py --device cuda

Writes the table to stdout and to benchmarks/results/learned_optimiser_speed_<device>_<threads>t.md.
This is a benchmark, not a test: it asserts the two implementations agree, nothing about speed.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from backprop2lib.data.mnist import bundled_split
from backprop2lib.learned.optimiser import CoordinatewiseOptimiser, LearnedOptimiserConfig, detach_state
from backprop2lib.learned.preprocess import preprocess_gradients
from backprop2lib.learned.problems import MNISTNets
from backprop2lib.models.mlp import MLP
from backprop2lib.runtime import describe_device, pick_device
from backprop2lib.second_order.hessian import output_loss
from backprop2lib.timing import time_per_call

from common import (NOISY, device_description, fmt_s, noisy_note, publish, release_free_heap,  # benchmarks/common.py
                    status_kib)


UNROLL = 20  # optimisee steps per truncation
EPISODE = 100  # optimisee steps before θ and the state are reset
META_LR = 1e-3
BATCH = 128
SEED_NET, SEED_PROBLEM = 0, 0
CHECK_STEPS, CHECK_B, CHECK_BATCH, CHECK_TOL = 3, 2, 8, 1e-10
BIG_B = 128  # measured only if predicted to fit
BIG_LIMIT_S = 60.0  # ... in this many seconds for both implementations
WARMUP_MAX = 4  # untimed truncations per measurement, at most
IMPLS = ("rows", "flattened", "compiled", "per-tensor")
P = MLP((784, 20, 10), activation="sigmoid").n_params  # 15,910 coordinates per optimisee


# --------------------------------------------------------------------------- memory
def _release(device: torch.device) -> None:
    """Free what earlier truncations left and hand it back to the OS (glibc), so RSS is live memory."""
    if device.type == "cuda":
        gc.collect()
        torch.cuda.empty_cache()
        return
    release_free_heap()


def _reset_peak(device: torch.device) -> int | None:
    """Reset the peak-memory mark; return the baseline in bytes."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.memory_allocated(device)
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # VmHWM := VmRSS
    except OSError:
        return None
    rss = status_kib("VmRSS")
    return None if rss is None else rss * 1024


def _peak_extra(device: torch.device, base: int | None) -> float | None:
    """GiB the measurement added at its peak (CPU: VmHWM over the baseline RSS)."""
    if base is None:
        return None
    if device.type == "cuda":
        return (torch.cuda.max_memory_allocated(device) - base) / 2**30
    hwm = status_kib("VmHWM")
    return None if hwm is None else max(0, hwm * 1024 - base) / 2**30


def _available_gib(device: torch.device) -> float | None:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free / 2**30
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


# ------------------------------------------------------------------ implementations
class Truncations:
    """One truncation of meta-training, the same for both implementations: ``steps`` optimisee
    steps, backward through them, the Adam step on φ, then θ and the state detached."""

    def truncation(self, steps: int) -> float:
        if self.t >= EPISODE:
            self.reset()
        meta_loss = 0.0
        for _ in range(steps):
            meta_loss = meta_loss + self.step()[1].mean()
        self.meta_opt.zero_grad(set_to_none=True)
        meta_loss.backward()
        self.meta_opt.step()
        self.detach()
        return float(meta_loss.detach())


class Flattened(Truncations):
    """The library as it is meant to be used: θ [B, P], state rows [B·P, 20]."""

    name = "flattened"

    def __init__(self, net: CoordinatewiseOptimiser, problems: MNISTNets):
        self.net, self.problems = net, problems
        self.meta_opt = torch.optim.Adam(net.parameters(), lr=META_LR)
        self.reset()

    def reset(self) -> None:
        p = self.problems
        self.theta = p.init()
        self.state = self.net.initial_state(p.n_instances, p.n_params, device=self.theta.device, dtype=self.theta.dtype)
        self.t = 0

    def step(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimisee step: (update [B, P], loss at the new θ [B])."""
        _, grad = self.problems.loss_and_grad(self.theta.detach(), self.t)
        update, self.state = self.net(grad, self.state)
        self.theta = self.theta + update
        self.t += 1
        return update, self.problems.loss(self.theta, self.t)

    def detach(self) -> None:
        self.theta, self.state = self.theta.detach(), detach_state(self.state)


class Rows(Flattened):
    """The library before its speed work: the same flattening, the state as rows [B·P, 20], nn.LSTMCell."""

    name = "rows"

    def reset(self) -> None:
        p = self.problems
        self.theta = p.init()
        h = self.net.config.hidden
        self.state = tuple(torch.zeros(p.n_instances * p.n_params, h, device=self.theta.device, dtype=self.theta.dtype)
                           for _ in range(2 * self.net.config.layers))
        self.t = 0

    def step(self) -> tuple[torch.Tensor, torch.Tensor]:
        _, grad = self.problems.loss_and_grad(self.theta.detach(), self.t)
        cfg = self.net.config
        x = preprocess_gradients(grad.reshape(-1), cfg.preprocess)
        new = []
        for i, cell in enumerate(self.net.cells):
            h, c = cell(x, (self.state[2 * i], self.state[2 * i + 1]))
            new += [h, c]
            x = h
        update = (self.net.head(x).squeeze(-1) * cfg.output_scale).reshape(grad.shape)
        self.state = tuple(new)
        self.theta = self.theta + update
        self.t += 1
        return update, self.problems.loss(self.theta, self.t)


class Compiled(Flattened):
    """The library under torch.compile: a copy of the net, compiled (compiles on its first truncations)."""

    name = "compiled"

    def __init__(self, net: CoordinatewiseOptimiser, problems: MNISTNets):
        super().__init__(net.copy().compile(), problems)


class PerTensor(Truncations):
    """A port's structure: θ = [W1, b1, W2, b2], one state and one cell call per layer per tensor."""

    name = "per-tensor"

    def __init__(self, net: CoordinatewiseOptimiser, problems: MNISTNets):
        if net.config.cell != "lstm":
            raise ValueError("the per-tensor loop is written for the LSTM")
        self.config = net.config
        self.net = CoordinatewiseOptimiser(net.config)  # same architecture, weights copied below
        self.net.load_state_dict(net.state_dict())
        self.net.to(device=next(net.parameters()).device, dtype=next(net.parameters()).dtype)
        self.problems = problems
        self.sizes = [s.numel() for s in problems.model.unflatten(problems.theta0[0])]
        self.meta_opt = torch.optim.Adam(self.net.parameters(), lr=META_LR)
        self.reset()

    def reset(self) -> None:
        p = self.problems
        self.thetas = [w.clone() for w in p.model.unflatten(p.init())]  # [B, *shape] each
        h = self.config.hidden
        self.states = [[torch.zeros(p.n_instances * n, h, dtype=p.theta0.dtype, device=p.theta0.device)
                        for _ in range(2 * self.config.layers)] for n in self.sizes]
        self.t = 0

    def _cells(self, grad: torch.Tensor, state: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """grad [B, n] → update [B, n]; one LSTMCell call per layer, for this tensor alone."""
        x = preprocess_gradients(grad.reshape(-1), self.config.preprocess)
        new = []
        for i, cell in enumerate(self.net.cells):
            h, c = cell(x, (state[2 * i], state[2 * i + 1]))
            new += [h, c]
            x = h
        return (self.net.head(x).squeeze(-1) * self.config.output_scale).reshape(grad.shape), new

    def loss(self, step: int) -> torch.Tensor:
        x, y = self.problems.batch(step)
        out = self.problems.model.forward(tuple(self.thetas), x, check=False)
        return output_loss(out, y, "cross_entropy").mean(1)

    def step(self) -> tuple[torch.Tensor, torch.Tensor]:
        B = self.problems.n_instances
        flat = torch.cat([w.detach().reshape(B, -1) for w in self.thetas], dim=1)
        _, grad = self.problems.loss_and_grad(flat, self.t)
        updates, start = [], 0
        for k, (w, n) in enumerate(zip(self.thetas, self.sizes)):
            update, self.states[k] = self._cells(grad[:, start:start + n], self.states[k])
            self.thetas[k] = w + update.reshape(w.shape)
            updates.append(update)
            start += n
        self.t += 1
        return torch.cat(updates, dim=1), self.loss(self.t)

    def detach(self) -> None:
        self.thetas = [w.detach() for w in self.thetas]
        self.states = [[s.detach() for s in st] for st in self.states]


BUILDERS = {"rows": Rows, "flattened": Flattened, "compiled": Compiled, "per-tensor": PerTensor}


def make_problems(n: int, data, device: torch.device, dtype=torch.float32, batch_size: int = BATCH) -> MNISTNets:
    return MNISTNets.sample(n, data, batch_size=batch_size, seed=SEED_PROBLEM, device=device, dtype=dtype)


def make_net(cell: str, device: torch.device, dtype=torch.float32) -> CoordinatewiseOptimiser:
    net = CoordinatewiseOptimiser(LearnedOptimiserConfig(cell=cell), seed=SEED_NET)
    return net.to(device=device, dtype=dtype)


# ---------------------------------------------------------------------- correctness
def check_correctness(data, device: torch.device) -> str:
    """float64, 3 steps, tiny batch: every implementation's updates, losses and meta-gradient against the library's."""
    problems = make_problems(CHECK_B, data, device, torch.float64, CHECK_BATCH)
    net = make_net("lstm", device, torch.float64)
    ref = Flattened(net, problems)
    others = [BUILDERS[impl](net, problems) for impl in IMPLS if impl != "flattened"]
    worst = {o.name: [0.0, 0.0, 0.0] for o in others}
    totals = {o.name: 0.0 for o in others}
    total_ref = 0.0
    for _ in range(CHECK_STEPS):
        ua, la = ref.step()
        total_ref = total_ref + la.mean()
        for o in others:
            ub, lb = o.step()
            w = worst[o.name]
            w[0] = max(w[0], float((ua - ub).detach().abs().max()))
            w[1] = max(w[1], float((la - lb).detach().abs().max()))
            totals[o.name] = totals[o.name] + lb.mean()
    ga = torch.autograd.grad(total_ref, list(ref.net.parameters()))
    for o in others:
        gb = torch.autograd.grad(totals[o.name], list(o.net.parameters()))
        worst[o.name][2] = max(float((x - y).abs().max()) for x, y in zip(ga, gb))
    scale_u = float(ua.detach().abs().max())
    ok = all(v < CHECK_TOL for w in worst.values() for v in w)
    parts = "; ".join(f"{name}: updates {w[0]:.1e}, losses {w[1]:.1e}, meta-gradient {w[2]:.1e}"
                      for name, w in worst.items())
    line = (f"float64, B = {CHECK_B} optimisees, minibatch {CHECK_BATCH}, {CHECK_STEPS} steps from the same θ₀ and "
            f"weights, max |diff| from the library (flattened, max |update| {scale_u:.1e}): {parts}; all < "
            f"{CHECK_TOL:g}: {'yes' if ok else 'no'}")
    print(line, flush=True)
    if not ok:
        sys.exit("FAILED: the implementations do not compute the same updates, so the timings would not compare "
                 "the same computation")
    return line


# --------------------------------------------------------------------------- timing
def _timed_truncation(runner, steps: int, device: torch.device, peaks: list | None = None) -> float:
    """One truncation: seconds (``backprop2lib.timing.time_per_call``, one call). With ``peaks``, freed
    memory is handed back to the OS first and the truncation's peak memory is appended to it."""
    if peaks is not None:
        _release(device)
        base = _reset_peak(device)
    seconds = time_per_call(lambda: runner.truncation(steps), repeats=1, warmup=0, rounds=1, device=device)
    if peaks is not None:
        peak = _peak_extra(device, base)
        if peak is not None:
            peaks.append(peak)
    return seconds


def measure(group: list[tuple[str, str]], n: int, data, device: torch.device, steps: int, budget: float) -> list[dict]:
    """Seconds per truncation for each (impl, cell) of group on the same B instances, interleaved.

    All runners are built first (between truncations each holds only θ and its state; the graph is
    freed by the backward, so the peak is one truncation's). Untimed passes over the runners come
    first (at least two, the first compiles; more, up to WARMUP_MAX, while a truncation is cheap, under budget / 2, and
    some runner's last one was over 1.2× its previous: first touch of the buffers, allocator growth),
    then as many timed passes as fit ~budget s per runner (1 to 5), each pass one truncation of every
    runner in turn, so slow drifts of the machine hit all of them alike. Median over passes."""
    _release(device)
    runners = [BUILDERS[impl](make_net(cell, device), make_problems(n, data, device)) for impl, cell in group]
    warm: list[list[float]] = [[] for _ in runners]
    peaks: list[list[float]] = [[] for _ in runners]

    def settled(w: list[float]) -> bool:
        return len(w) >= 2 and w[-1] <= 1.2 * w[-2]

    while len(warm[0]) < 2 or (len(warm[0]) < WARMUP_MAX and max(w[-1] for w in warm) < 0.5 * budget
                          and not all(settled(w) for w in warm)):
        for i, r in enumerate(runners):  # peak memory from the first (untimed) truncation of each
            warm[i].append(_timed_truncation(r, steps, device, None if warm[i] else peaks[i]))
    passes = int(min(5, max(1, round(budget / max(max(w[-1] for w in warm), 1e-9)))))
    timed: list[list[float]] = [[] for _ in runners]
    for _ in range(passes):
        for i, r in enumerate(runners):
            timed[i].append(_timed_truncation(r, steps, device))
    del runners
    out = []
    for (impl, cell), w, t, pk in zip(group, warm, timed, peaks):
        seconds = statistics.median(t)
        out.append(dict(impl=impl, cell=cell, B=n, seconds=seconds, steps_per_s=n * steps / seconds, rounds=t,
                        first=w[0], warm=w, peak_gib=max(pk) if pk else None))
    return out


def fmt_rounds(m: dict) -> str:
    lo, hi = min(m["rounds"]), max(m["rounds"])
    noisy = noisy_note(m["rounds"])
    if len(m["rounds"]) == 1:
        noisy = " (one pass: spread not measured)"
    mem = "" if m["peak_gib"] is None else f", peak +{m['peak_gib']:.2g} GiB"
    warm = ", ".join(fmt_s(w) for w in m["warm"])
    return f"{len(m['rounds'])} round(s), {fmt_s(lo)} … {fmt_s(hi)}{noisy}; untimed {warm}{mem}"


# -------------------------------------------------------------------------- reporting
def header(args, device: torch.device, check: str, steps: int, total_s: float | None, load: tuple) -> str:
    dev = device_description(device)
    cfg = LearnedOptimiserConfig()
    lines = [
        "# Learned optimiser (Andrychowicz et al. 2016): optimisee steps per second during meta-training",
        "",
        f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- torch {torch.__version__}, numpy {np.__version__}, Python {platform.python_version()}",
        f"- device: {dev}; torch threads: {args.threads}; load average at start {load[0]:.1f} / {load[1]:.1f} / "
        f"{load[2]:.1f} (1 / 5 / 15 min)",
        f"- problem: `MNISTNets.sample(B, bundled_split(seed=0).train, seed={SEED_PROBLEM})`: MLP 784-20-10 "
        f"sigmoid, cross-entropy, minibatch {BATCH}, P = {P:,} per optimisee, float32, θ₀ ~ N(0, 0.01²)",
        f"- optimiser: `CoordinatewiseOptimiser(LearnedOptimiserConfig(cell=...), seed={SEED_NET})`: {cfg.layers} "
        f"layers × {cfg.hidden} units, preprocessing p = {cfg.preprocess:g}, output scale {cfg.output_scale:g}; "
        f"meta-optimiser Adam {META_LR:g}",
        f"- one truncation: {steps} optimisee steps (grad from `loss_and_grad(θ.detach(), t)`, `net(grad, state)`, "
        f"θ + update, meta-loss += `loss(θ, t+1).mean()`), then backward, the Adam step on φ and the detach of θ "
        f"and the state; θ and the state reset every {EPISODE} steps",
        "- rows: the library before its speed work (state rows [B·P, 20], nn.LSTMCell); flattened: the library now "
        "(coordinate-last state [20, B·P], the cell on contiguous gate blocks); compiled: the same under "
        "`torch.compile`, as the stored meta-training jobs run it (compile time is in the untimed truncations); "
        "per-tensor: a port's loop over (W1, b1, W2, b2), each with its own gradient slice, state and "
        "cell calls (4× the calls), same weights (state dict copied), same gradient function (θ concatenated for "
        "`loss_and_grad`, then sliced) and the meta-loss from the tensors directly",
        f"- seconds per truncation: median over rounds of one truncation (`backprop2lib.timing.time_per_call`, "
        f"repeats 1, warmup 0); at each B the implementations (and, at B = {args.sizes[1]}, the GRU) are built "
        f"side by side and run in turn, one truncation each per pass, so the machine's drifts hit them alike: "
        f"untimed passes first (1 to {WARMUP_MAX}: more while a truncation is cheap and still getting faster; the "
        f"notes list them), then as many timed passes as fit ~{args.budget:g} s per implementation (1 to 5); "
        f"2 untimed truncations of each implementation at B = 1 before everything"
        f"{'; --quick' if args.quick else ''}; optimisee steps/s = B × {steps} ÷ seconds per truncation",
        "- peak memory: what each implementation's first truncation added at its peak: "
        + ("`torch.cuda.max_memory_allocated` over the allocation before" if device.type == "cuda" else
           "VmHWM over the RSS right before it (reset via /proc/self/clear_refs; memory freed earlier handed back to the OS first, `malloc_trim`)"),
        f"- B = {BIG_B}: measured only if predicted (B = {args.sizes[-1]} × {BIG_B // args.sizes[-1]}) to take under "
        f"{BIG_LIMIT_S:g} s for both implementations and to fit in the available memory",
    ]
    if device.type == "cpu" and (args.threads >= (os.cpu_count() or 1) or load[0] > 0.5 * (os.cpu_count() or 1)):
        lines.append(f"- caution: {args.threads} threads on {os.cpu_count()} cores with other load on the machine: "
                     "every op waits for the slowest thread; rows marked noisy (slowest round over "
                     f"{NOISY:g}× the fastest) are not to be trusted, and only ratios within this run compare")
    if total_s is not None:
        lines.append(f"- total runtime of this benchmark: {total_s:.0f} s")
    lines += ["", "Correctness (before timing):", "", f"- {check}"]
    return "\n".join(lines)


def table(rows: list[dict], skipped: str | None, gru: dict | None, steps: int) -> str:
    out = ["## LSTM: optimisee steps per second in meta-training", "",
           "Ratios against `rows`, the library before its speed work (> 1: faster); the last ratio is the "
           "library against a port's per-tensor loop.", "",
           "| B optimisees | coordinates B·P | rows (before) | flattened (now) | compiled (now, stored jobs) | "
           "per-tensor (ports) | flattened ÷ rows | compiled ÷ rows | flattened ÷ per-tensor | notes |",
           "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for n in sorted({r["B"] for r in rows}):
        got = {impl: next((r for r in rows if r["B"] == n and r["impl"] == impl), None) for impl in IMPLS}
        rate = {k: (v["steps_per_s"] if v else float("nan")) for k, v in got.items()}
        notes = "; ".join(f"{k}: {fmt_rounds(v)}" for k, v in got.items() if v)
        out.append(f"| {n} | {n * P:,} | {rate['rows']:.3g} | {rate['flattened']:.3g} | {rate['compiled']:.3g} | "
                   f"{rate['per-tensor']:.3g} | **{rate['flattened'] / rate['rows']:.2f}** | "
                   f"**{rate['compiled'] / rate['rows']:.2f}** | {rate['flattened'] / rate['per-tensor']:.2f} | {notes} |")
    if skipped:
        out.append(f"| {BIG_B} | {BIG_B * P:,} | – | – | – | – | – | – | – | skipped: {skipped} |")
    if gru is not None:
        lstm = next(r for r in rows if r["B"] == gru["B"] and r["impl"] == "flattened")
        out += ["", f"## GRU cell, flattened (B = {gru['B']})", "",
                "| cell | steps/s | s/truncation | GRU ÷ LSTM steps/s | notes |",
                "| --- | ---: | ---: | ---: | --- |",
                f"| LSTM | {lstm['steps_per_s']:.3g} | {fmt_s(lstm['seconds'])} | 1 | {fmt_rounds(lstm)} |",
                f"| GRU | {gru['steps_per_s']:.3g} | {fmt_s(gru['seconds'])} | "
                f"**{gru['steps_per_s'] / lstm['steps_per_s']:.2f}** | {fmt_rounds(gru)} |"]
    return "\n".join(out)


# ------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--quick", action="store_true", help="~10 s sanity run: B = 1, 4, truncations of 5 steps, "
                   "~1 s of timing per measurement, no B = 128; no results file")
    p.add_argument("--budget", type=float, default=None, help="seconds of timing per implementation and B "
                   "(default 8, or 1 with --quick; a slower truncation is still timed once)")
    p.add_argument("--sizes", type=int, nargs="+", default=None, help="batch sizes B (default 1 8 32; --quick: 1 4)")
    p.add_argument("--out", type=Path, default=None, help="Markdown results file "
                   "(default benchmarks/results/learned_optimiser_speed_<device>_<threads>t.md; --quick: not written)")
    args = p.parse_args(argv)
    if args.threads < 1:
        p.error("--threads must be >= 1")
    if args.budget is None:
        args.budget = 1.0 if args.quick else 8.0
    if args.budget <= 0:
        p.error("--budget must be > 0")
    args.sizes = tuple(args.sizes) if args.sizes else (1, 4) if args.quick else (1, 8, 32)
    if min(args.sizes) < 1 or len(args.sizes) < 2:
        p.error("--sizes: expected at least two batch sizes >= 1")
    steps = 5 if args.quick else UNROLL
    gru_b = args.sizes[1]
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)

    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    started = time.perf_counter()
    print(f"torch {torch.__version__}, device {describe_device(device)}, {args.threads} threads", flush=True)
    data = bundled_split(seed=0).train
    check = check_correctness(data, device)

    for impl in IMPLS:  # untimed: pages in the kernels and grows the allocator before the first measurement
        runner = BUILDERS[impl](make_net("lstm", device), make_problems(1, data, device))
        for _ in range(2):
            runner.truncation(steps)
    del runner

    rows, gru = [], None
    for n in args.sizes:
        group = [(impl, "lstm") for impl in IMPLS] + ([("flattened", "gru")] if n == gru_b else [])
        for r in measure(group, n, data, device, steps, args.budget):
            if r["cell"] == "gru":
                gru = r
            else:
                rows.append(r)
            print(f"  B={n:4d} {r['impl']:10s} {r['cell']:4s}: {r['steps_per_s']:8.3g} steps/s "
                  f"({fmt_s(r['seconds'])} per truncation; {fmt_rounds(r)})", flush=True)
    skipped = None
    if not args.quick:
        last = [r for r in rows if r["B"] == args.sizes[-1]]
        factor = BIG_B / args.sizes[-1]
        # build + first truncation + at least one timed one, for both implementations
        predicted = sum(factor * (r["first"] + r["seconds"]) for r in last)
        peaks = [r["peak_gib"] for r in last if r["peak_gib"] is not None]
        mem = factor * max(peaks) if peaks else None
        avail = _available_gib(device)
        if predicted > BIG_LIMIT_S:
            skipped = f"predicted {predicted:.0f} s (> {BIG_LIMIT_S:g} s)"
        if mem is not None and avail is not None and mem > 0.8 * avail:
            skipped = (skipped + "; " if skipped else "") + f"predicted peak {mem:.0f} GiB, {avail:.0f} GiB available"
        if skipped is None:
            for r in measure([(impl, "lstm") for impl in IMPLS], BIG_B, data, device, steps, 0.0):
                rows.append(r)
                print(f"  B={BIG_B:4d} {r['impl']:10s}: {r['steps_per_s']:8.3g} steps/s", flush=True)
        else:
            print(f"  B={BIG_B}: skipped ({skipped})", flush=True)
    total = time.perf_counter() - started
    report = header(args, device, check, steps, total, load) + "\n\n" + table(rows, skipped, gru, steps) + "\n"
    publish(report, name="learned_optimiser_speed", out=args.out, quick=args.quick, device=device, threads=args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
