"""Benchmark: MAML / first-order MAML / Reptile on the MAML-paper sinusoids, ours against the peers.

Network 1-40-40-1 ReLU, K = 10 support + 10 query points per task, inner SGD lr 0.01 on the MSE
(the peers' convention; backprop2lib takes the same step as 0.02 on its E = ½ SSE per point),
meta-optimiser Adam 1e-3. One meta-iteration = meta-loss forward + backward + Adam step
(Reptile: one Reptile update). Implementations, same torch, same data, one run:

  backprop2lib     maml_loss / reptile_update (tasks batched, explicit inner gradient)
  higher           per-task loop with higher.innerloop_ctx and a differentiable SGD
  torchopt         per-task loop with torchopt.MetaSGD and extract/recover_state_dict
  autograd loop    backprop2lib.meta.reference (per-task loop, autograd.grad(create_graph=True))
  torch.func.vmap  vmap over tasks of a task loss whose inner step uses torch.func.grad

Every (implementation, config) is measured in its own subprocess (this script re-invoked
with ``--worker``), which prints one JSON line: ms per meta-iteration (median over rounds,
``backprop2lib.timing.time_per_call``) and the peak memory the meta-iterations add (CPU: peak
RSS over the RSS right before the first meta-iteration; CUDA: ``max_memory_allocated`` over
the allocation right before). Before timing, the meta-gradients of every peer are checked
against ours.

    python benchmarks/maml_sinusoid.py                  # full run, 1 thread (~5 minutes on 2 cores)
    python benchmarks/maml_sinusoid.py --threads 2
    python benchmarks/maml_sinusoid.py --quick          # ~1 minute sanity run
    python benchmarks/maml_sinusoid.py --device cuda

Writes the tables to stdout and to benchmarks/results/maml_sinusoid_<device>_<threads>t.md.
This is a benchmark, not a test: it asserts the meta-gradients agree, nothing about speed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from backprop2lib.meta.adapt import from_mse_lr
from backprop2lib.meta.maml import maml_loss
from backprop2lib.meta.reference import maml_loss_per_task, reptile_update_per_task
from backprop2lib.meta.reptile import reptile_update
from backprop2lib.meta.training import make_adam
from backprop2lib.models.mlp import MLP
from backprop2lib.runtime import pick_device
from backprop2lib.tasks import SinusoidTasks, TaskBatch
from backprop2lib.timing import time_per_call

from common import device_description, publish, release_free_heap, status_kib  # benchmarks/common.py


SIZES = (1, 40, 40, 1)
K_SUPPORT = K_QUERY = 10
INNER_LR = 0.01  # on the MSE, as the MAML paper and the peers (higher, torchopt, vmap) state it
OUR_INNER_LR = from_mse_lr(INNER_LR)  # the same step on backprop2lib's E (0.02 for one output)
META_LR = 1e-3
REPTILE_OUTER = 0.5
SEED = 0

OURS = "backprop2lib"
IMPLS = (OURS, "higher", "torchopt", "autograd loop", "torch.func.vmap")
REPTILE_IMPLS = (OURS, "autograd loop", "torch.func.vmap")

NOTES = {
    ("higher", "fo"): "track_higher_grads=False (plain grads, detached fast weights); "
                      "meta-grad copied from the fast weights by hand",
    ("torchopt", "fo"): "MetaSGD always builds create_graph=True grads; torchopt.stop_gradient "
                        "after each inner step, meta-grad copied from the adapted params by hand",
    ("torch.func.vmap", "fo"): "inner grads detached",
}


@dataclass(frozen=True)
class Config:
    group: str
    algo: str  # "maml" or "reptile"
    tasks: int
    steps: int
    first_order: bool = False

    @property
    def key(self) -> str:
        return "fo" if self.first_order else ("reptile" if self.algo == "reptile" else "so")


GROUPS: list[tuple[str, Config, tuple[str, ...]]] = [
    ("MAML, 25 tasks, 1 inner step, second order", Config("g1", "maml", 25, 1), IMPLS),
    ("First-order MAML, 25 tasks, 1 inner step", Config("g2", "maml", 25, 1, True), IMPLS),
    ("MAML, 25 tasks, 5 inner steps, second order", Config("g3", "maml", 25, 5), IMPLS),
    ("First-order MAML, 25 tasks, 5 inner steps", Config("g4", "maml", 25, 5, True), IMPLS),
    (f"Reptile, 25 tasks, 5 inner steps on support+query, outer step {REPTILE_OUTER}",
     Config("g5", "reptile", 25, 5), REPTILE_IMPLS),
    ("Scaling: MAML, 100 tasks, 1 inner step, second order", Config("g6", "maml", 100, 1), IMPLS),
    ("Scaling: MAML, 1,000 tasks, 1 inner step, second order", Config("g7", "maml", 1000, 1), IMPLS),
]


# --------------------------------------------------------------------------- data and models
def make_problem(n_tasks: int, device: torch.device):
    gen = torch.Generator().manual_seed(SEED)
    model = MLP(SIZES, "relu")
    theta0 = model.init(generator=gen, device=device)
    batch = SinusoidTasks.maml().sample(n_tasks, K_SUPPORT, K_QUERY, generator=gen, device=device)
    return model, theta0, batch


def leaf_params(theta0):
    return tuple(p.detach().clone().requires_grad_(True) for p in theta0)


def flat_leaf(model, theta0) -> torch.Tensor:
    """backprop2lib's convention: the start as one flat vector [P]."""
    return model.flatten(theta0).detach().clone().requires_grad_(True)


def make_net(theta0, device) -> torch.nn.Sequential:
    """The nn.Sequential the per-task-loop libraries expect, holding the same weights as theta0."""
    net = torch.nn.Sequential(torch.nn.Linear(1, 40), torch.nn.ReLU(), torch.nn.Linear(40, 40), torch.nn.ReLU(),
                              torch.nn.Linear(40, 1)).to(device)
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for i, lin in enumerate(linears):
            lin.weight.copy_(theta0[2 * i].T)
            lin.bias.copy_(theta0[2 * i + 1])
    return net


def net_grads_as_theta(net) -> tuple[torch.Tensor, ...]:
    """The nn.Sequential's .grad in the (W [in,out], b) layout of backprop2lib."""
    out = []
    for m in net:
        if isinstance(m, torch.nn.Linear):
            out += [m.weight.grad.T, m.bias.grad]
    return tuple(out)


def mse(pred, y):
    return (pred - y).pow(2).mean()


# ------------------------------------------------------------------------- implementations
# Each builder returns (params_with_grad_in_theta_layout_fn, meta_iteration_fn, zero_and_grad_fn).
# ``meta_grad()`` computes the meta-gradient once (no Adam step) for the correctness check;
# ``step()`` is one meta-iteration (forward + backward + Adam step).

def timed_step(meta_grad, opt):
    """What one timed meta-iteration is for every MAML implementation: its meta-gradient,
    then the same Adam update."""
    def step():
        meta_grad()
        opt.step()
    return step


def accumulate_grads(params, grads) -> None:
    """Add per-task meta-gradients into ``.grad`` by hand (the peers' first-order modes put
    them on fast weights, not on the meta-parameters)."""
    for p, g in zip(params, grads):
        p.grad = g.clone() if p.grad is None else p.grad.add_(g)


def build_ours(cfg: Config, model, theta0, batch, device):
    theta = flat_leaf(model, theta0)
    if cfg.algo == "reptile":
        state = [theta.detach()]
        x, y = batch.x_all, batch.y_all

        def step():
            state[0], _ = reptile_update(model, state[0], x, y, inner_steps=cfg.steps, inner_lr=OUR_INNER_LR,
                                         outer_lr=REPTILE_OUTER)
        return None, step, lambda: model.unflatten(state[0])
    opt = make_adam([theta], META_LR)

    def loss():
        return maml_loss(model, theta, batch, inner_steps=cfg.steps, inner_lr=OUR_INNER_LR,
                         first_order=cfg.first_order)

    def meta_grad():
        opt.zero_grad(set_to_none=True)
        loss().backward()
        return model.unflatten(theta.grad)

    return meta_grad, timed_step(meta_grad, opt), lambda: model.unflatten(theta)


def build_autograd_loop(cfg: Config, model, theta0, batch, device):
    theta = flat_leaf(model, theta0)
    if cfg.algo == "reptile":
        state = [theta.detach()]
        x, y = batch.x_all, batch.y_all

        def step():
            state[0] = reptile_update_per_task(model, state[0], x, y, inner_steps=cfg.steps, inner_lr=OUR_INNER_LR,
                                               outer_lr=REPTILE_OUTER)
        return None, step, lambda: model.unflatten(state[0])
    opt = make_adam([theta], META_LR)

    def meta_grad():
        opt.zero_grad(set_to_none=True)
        maml_loss_per_task(model, theta, batch, inner_steps=cfg.steps, inner_lr=OUR_INNER_LR,
                           first_order=cfg.first_order).backward()
        return model.unflatten(theta.grad)

    return meta_grad, timed_step(meta_grad, opt), lambda: model.unflatten(theta)


def _vmap_forward(params, x):
    h = x
    n = len(params) // 2
    for layer in range(n):
        h = h @ params[2 * layer] + params[2 * layer + 1]
        if layer < n - 1:
            h = torch.relu(h)
    return h


def build_vmap(cfg: Config, model, theta0, batch, device):
    from torch.func import grad, vmap

    theta = leaf_params(theta0)

    def inner_loss(params, x, y):
        return mse(_vmap_forward(params, x), y)

    if cfg.algo == "reptile":
        def adapt(params, x, y):
            for _ in range(cfg.steps):
                g = grad(inner_loss)(params, x, y)
                params = tuple(p - INNER_LR * gi for p, gi in zip(params, g))
            return params

        batched_adapt = vmap(adapt, in_dims=(None, 0, 0))
        state = [tuple(p.detach() for p in theta)]
        x, y = batch.x_all, batch.y_all

        @torch.no_grad()
        def step():
            phi = batched_adapt(state[0], x, y)
            state[0] = tuple(torch.lerp(p, f.mean(dim=0), REPTILE_OUTER) for p, f in zip(state[0], phi))
        return None, step, lambda: state[0]

    def task_loss(params, xs, ys, xq, yq):
        for _ in range(cfg.steps):
            g = grad(inner_loss)(params, xs, ys)
            if cfg.first_order:
                g = tuple(gi.detach() for gi in g)
            params = tuple(p - INNER_LR * gi for p, gi in zip(params, g))
        return inner_loss(params, xq, yq)

    batched = vmap(task_loss, in_dims=(None, 0, 0, 0, 0))
    opt = make_adam(theta, META_LR)

    def meta_grad():
        opt.zero_grad(set_to_none=True)
        batched(theta, batch.x_support, batch.y_support, batch.x_query, batch.y_query).mean().backward()
        return tuple(p.grad for p in theta)

    return meta_grad, timed_step(meta_grad, opt), lambda: theta


def build_higher(cfg: Config, model, theta0, batch, device):
    import higher

    net = make_net(theta0, device)
    inner_opt = torch.optim.SGD(net.parameters(), lr=INNER_LR)
    meta_opt = make_adam(list(net.parameters()), META_LR)
    T = batch.n_tasks
    xs, ys, xq, yq = batch.x_support, batch.y_support, batch.x_query, batch.y_query
    fo = cfg.first_order

    def meta_grad():
        meta_opt.zero_grad(set_to_none=True)
        params = list(net.parameters())
        for t in range(T):
            with higher.innerloop_ctx(net, inner_opt, copy_initial_weights=False,
                                      track_higher_grads=not fo) as (fnet, diffopt):
                for _ in range(cfg.steps):
                    diffopt.step(mse(fnet(xs[t]), ys[t]))
                qloss = mse(fnet(xq[t]), yq[t]) / T
                if fo:
                    # the fast weights are detached leaves: the (first-order) meta-gradient lands on them
                    grads = torch.autograd.grad(qloss, list(fnet.fast_params))
                    accumulate_grads(params, grads)
                else:
                    qloss.backward()
        return net_grads_as_theta(net)

    return meta_grad, timed_step(meta_grad, meta_opt), lambda: net


def build_torchopt(cfg: Config, model, theta0, batch, device):
    import torchopt

    net = make_net(theta0, device)
    inner_opt = torchopt.MetaSGD(net, lr=INNER_LR)
    meta_opt = make_adam(list(net.parameters()), META_LR)
    T = batch.n_tasks
    xs, ys, xq, yq = batch.x_support, batch.y_support, batch.x_query, batch.y_query
    fo = cfg.first_order

    def meta_grad():
        meta_opt.zero_grad(set_to_none=True)
        params = list(net.parameters())
        net_state = torchopt.extract_state_dict(net)
        opt_state = torchopt.extract_state_dict(inner_opt)
        for t in range(T):
            for _ in range(cfg.steps):
                inner_opt.step(mse(net(xs[t]), ys[t]))
                if fo:
                    torchopt.stop_gradient(net)
                    torchopt.stop_gradient(inner_opt)
            qloss = mse(net(xq[t]), yq[t]) / T
            if fo:
                grads = torch.autograd.grad(qloss, list(net.parameters()))
                accumulate_grads(params, grads)
            else:
                qloss.backward()
            torchopt.recover_state_dict(net, net_state)
            torchopt.recover_state_dict(inner_opt, opt_state)
        return net_grads_as_theta(net)

    return meta_grad, timed_step(meta_grad, meta_opt), lambda: net


BUILDERS = {
    OURS: build_ours,
    "higher": build_higher,
    "torchopt": build_torchopt,
    "autograd loop": build_autograd_loop,
    "torch.func.vmap": build_vmap,
}


# ------------------------------------------------------------------------------ correctness
def check_correctness(device: torch.device, threads: int) -> list[str]:
    """Meta-gradients (before any Adam step) of every peer against ours; Reptile updates likewise.

    The required check is MAML, 25 tasks, 1 inner step, second order; first-order MAML and
    Reptile are checked the same way, so a peer measured in a mode that computes something
    else cannot slip through.
    """
    torch.set_num_threads(threads)
    rtol, atol = 1e-4, 1e-6
    lines, failures = [], []
    checks = [("MAML, 25 tasks, 1 step, second order", Config("c", "maml", 25, 1), IMPLS),
              ("first-order MAML, 25 tasks, 1 step", Config("c", "maml", 25, 1, True), IMPLS),
              ("Reptile, 25 tasks, 5 steps (one update)", Config("c", "reptile", 25, 5), REPTILE_IMPLS)]
    for title, cfg, impls in checks:
        model, theta0, batch = make_problem(cfg.tasks, device)
        if cfg.algo == "reptile":
            results = {}
            for name in impls:
                _, step, get = BUILDERS[name](cfg, model, theta0, batch, device)
                step()
                results[name] = tuple(p.detach() for p in get())
        else:
            results = {name: tuple(g.detach() for g in BUILDERS[name](cfg, model, theta0, batch, device)[0]())
                       for name in impls}
        ref = results[OURS]
        for name in impls:
            if name == OURS:
                continue
            ok = all(torch.allclose(a, b, rtol=rtol, atol=atol) for a, b in zip(results[name], ref))
            diff = max(float((a - b).abs().max()) for a, b in zip(results[name], ref))
            scale = max(float(b.abs().max()) for b in ref)
            what = "updates" if cfg.algo == "reptile" else "meta-gradients"
            line = (f"[{title}] {name}: {what} agree: {'yes' if ok else 'no'} (allclose rtol {rtol:g}, "
                    f"atol {atol:g}, float32; max |diff| {diff:.1e}, max |ours| {scale:.1e})")
            print(line, flush=True)
            lines.append(line)
            if not ok:
                failures.append(f"{name} ({title})")
    if failures:
        sys.exit("FAILED: these peers' meta-gradients disagree with backprop2lib's, so their timings would "
                 "compare different computations: " + "; ".join(failures))
    return lines


# ---------------------------------------------------------------------------------- worker
# Peak RSS. ``getrusage(RUSAGE_SELF).ru_maxrss`` is the kernel's high-water mark of the process's
# resident set, but in a child it is useless here: Linux carries the parent's peak across exec
# (signal->maxrss), so every worker would report at least this script's own peak. The worker
# reads the same per-process mark, unpolluted, as VmHWM in /proc/self/status and resets it to the
# current RSS (write "5" to /proc/self/clear_refs) right before the timing loop; where either is
# missing it falls back to ru_maxrss and says so.

def _maxrss_kib() -> int:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r // 1024 if sys.platform == "darwin" else r  # bytes on macOS, KiB on Linux


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark to the current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return status_kib("VmHWM") is not None
    except OSError:
        return False


def run_worker(impl: str, cfg: Config, device: torch.device, threads: int, budget_s: float) -> dict:
    torch.set_num_threads(threads)
    model, theta0, batch = make_problem(cfg.tasks, device)
    _, step, _ = BUILDERS[impl](cfg, model, theta0, batch, device)
    cuda = device.type == "cuda"

    # one untimed call first: it pages in the kernels' code and does one-time initialisation,
    # which would otherwise be counted as the meta-iteration's memory
    t0 = time.perf_counter()
    step()
    if cuda:
        torch.cuda.synchronize(device)
    first = time.perf_counter() - t0
    release_free_heap()
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        mem_before = torch.cuda.memory_allocated(device)
    else:
        peak_reset = _reset_peak_rss()
        mem_before = (status_kib("VmRSS") or _maxrss_kib()) * 1024

    # the timing loop. Calibration calls (the warm-up) set repeats so one measurement takes about
    # budget_s: fewer repeats for the slow implementations
    n_warm = 1 if first > 0.2 else 3
    t0 = time.perf_counter()
    for _ in range(n_warm):
        step()
    if cuda:
        torch.cuda.synchronize(device)
    est = (time.perf_counter() - t0) / n_warm
    rounds = 5 if 5 * est <= budget_s else 3
    repeats = int(max(1, min(500, budget_s / (rounds * est))))
    # time_per_call's median over rounds, one round per call so the spread can be reported too
    per_round = sorted(time_per_call(step, repeats=repeats, warmup=0, rounds=1, device=device)
                       for _ in range(rounds))
    seconds = statistics.median(per_round)

    if cuda:
        peak_extra = torch.cuda.max_memory_allocated(device) - mem_before
        mem_note = "cuda max_memory_allocated"
    elif peak_reset:
        peak_extra = status_kib("VmHWM") * 1024 - mem_before
        mem_note = "VmHWM (reset before the timing loop)"
    else:
        peak_extra = _maxrss_kib() * 1024 - mem_before
        mem_note = "ru_maxrss (peak could not be reset: may be hidden by an earlier or inherited peak)"
    return dict(impl=impl, config=asdict(cfg), ms=seconds * 1e3, peak_extra_mib=max(0, peak_extra) / 2**20,
                rss_before_mib=mem_before / 2**20, ru_maxrss_mib=_maxrss_kib() / 1024, repeats=repeats,
                rounds=rounds, round_min_ms=per_round[0] * 1e3, round_max_ms=per_round[-1] * 1e3,
                threads=torch.get_num_threads(), device=str(device), mem_note=mem_note)


def spawn_worker(impl: str, cfg: Config, args) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", impl, json.dumps(asdict(cfg)),
           "--threads", str(args.threads), "--device", args.device, "--budget", str(args.budget)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-8:]
        return dict(impl=impl, config=asdict(cfg), error="\n".join(tail) or f"exit code {proc.returncode}")
    return json.loads(lines[-1])


# --------------------------------------------------------------------------------- reporting
def table(title: str, cfg: Config, rows: list[dict]) -> str:
    ours = next((r for r in rows if r["impl"] == OURS and "ms" in r), None)
    out = [f"### {title}", "",
           "| implementation | ms / meta-iteration | speed ratio (peer ÷ ours) | peak extra memory (MiB) | notes |",
           "| --- | ---: | ---: | ---: | --- |"]
    for r in rows:
        note = NOTES.get((r["impl"], cfg.key), "")
        if "error" in r:
            msg = r["error"].splitlines()[-1][:160] if r["error"] else "failed"
            out.append(f"| {r['impl']} | failed | – | – | {msg} |")
            continue
        ratio = f"{r['ms'] / ours['ms']:.2f}" if ours else "–"
        ratio = "1.00 (ours)" if r["impl"] == OURS else ratio
        if not r["mem_note"].startswith(("VmHWM", "cuda")):
            note = (note + "; " if note else "") + "memory: " + r["mem_note"]
        spread = r["round_max_ms"] / r["round_min_ms"]
        reps = f"{r['rounds']}×{r['repeats']} calls, rounds {r['round_min_ms']:.3g}–{r['round_max_ms']:.3g} ms"
        if spread > 1.5:
            reps += f" (**noisy**: ×{spread:.1f} spread)"
        out.append(f"| {r['impl']} | {r['ms']:.2f} | {ratio} | {r['peak_extra_mib']:.1f} | "
                   f"{note + '; ' if note else ''}{reps} |")
    return "\n".join(out)


def header(args, device: torch.device, checks: list[str], total_s: float | None) -> str:
    import higher
    import torchopt
    dev = device_description(device)
    lines = [
        "# MAML on the MAML-paper sinusoids: backprop2lib against the peers",
        "",
        f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- torch {torch.__version__}, higher {getattr(higher, '__version__', '0.2.1')}, "
        f"torchopt {torchopt.__version__}, Python {platform.python_version()}",
        f"- device: {dev}; torch threads per worker: {args.threads}",
        f"- setting: MLP {'-'.join(map(str, SIZES))} ReLU, K = {K_SUPPORT} support + {K_QUERY} query points, "
        f"inner SGD lr {INNER_LR} on the MSE ({OUR_INNER_LR:g} on backprop2lib's E), meta-optimiser Adam {META_LR:g} (the same torch.optim.Adam, fused where "
        f"available, for every implementation); one fixed meta-batch per config (seed {SEED})",
        f"- ms: median over rounds of the mean time per meta-iteration "
        f"(backprop2lib.timing.time_per_call, ~{args.budget:g} s of timing per measurement; notes give "
        f"rounds × calls per round and the fastest and slowest round"
        f"{', --quick' if args.quick else ''}); each (implementation, config) in its own subprocess",
        "- peak extra memory: " + ("torch.cuda.max_memory_allocated minus the allocation right before the "
                                   "timing loop" if device.type == "cuda" else
                                   "peak RSS minus the RSS right before the timing loop, in the worker process; "
                                   "the peak is the kernel's RSS high-water mark (what ru_maxrss reports), read "
                                   "as VmHWM and reset before the loop, because a child's ru_maxrss inherits "
                                   "its parent's peak. One untimed call and a malloc_trim come first, so code "
                                   "paging and one-time initialisation are not counted; the peak includes "
                                   "autograd's and the allocator's transient buffers"),
        "- speed ratio: peer ms ÷ ours ms, so > 1 means backprop2lib is faster",
    ]
    if device.type == "cpu" and args.threads >= (os.cpu_count() or 1):
        lines.append(f"- caution: {args.threads} threads on {os.cpu_count()} cores: any other load on the machine "
                     "stalls the OpenMP thread team on every small op (rounds many times slower); rows marked "
                     "noisy are not to be trusted")
    if total_s is not None:
        lines.append(f"- total runtime of this benchmark: {total_s:.0f} s")
    lines += ["", "Correctness (meta-gradients before the Adam step, against backprop2lib):", ""]
    lines += [f"- {c}" for c in checks]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ main
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads in every worker (default 1)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--quick", action="store_true", help="~1 minute sanity run: short timings; 25-task MAML (1 step, both orders) and Reptile only; no results file")
    p.add_argument("--budget", type=float, default=None, help="seconds of timing per measurement "
                   "(default 3, or 0.3 with --quick)")
    p.add_argument("--out", type=Path, default=None, help="Markdown results file "
                   "(default benchmarks/results/maml_sinusoid_<device>_<threads>t.md; --quick: not written)")
    p.add_argument("--worker", nargs=2, metavar=("IMPL", "CONFIG_JSON"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.threads < 1:
        p.error("--threads must be >= 1")
    if args.budget is None:
        args.budget = 0.3 if args.quick else 3.0
    device = pick_device(args.device)

    if args.worker:
        impl, cfg_json = args.worker
        result = run_worker(impl, Config(**json.loads(cfg_json)), device, args.threads, args.budget)
        print(json.dumps(result), flush=True)
        return 0

    started = time.perf_counter()
    print(f"torch {torch.__version__}, device {device}, {args.threads} thread(s) per worker", flush=True)
    checks = check_correctness(device, args.threads)

    groups = GROUPS
    if args.quick:  # every code path once (second order, first order, Reptile), 25 tasks, 1 step
        groups = [g for g in GROUPS if g[1].group in ("g1", "g2", "g5")]
    sections = []
    for title, cfg, impls in groups:
        rows = []
        for impl in impls:
            r = spawn_worker(impl, cfg, args)
            rows.append(r)
            shown = f"{r['ms']:.2f} ms, +{r['peak_extra_mib']:.1f} MiB" if "ms" in r else "FAILED: " + r["error"]
            print(f"  {title} | {impl}: {shown}", flush=True)
        sections.append(table(title, cfg, rows))
    total = time.perf_counter() - started
    report = header(args, device, checks, total) + "\n\n" + "\n\n".join(sections) + "\n"
    publish(report, name="maml_sinusoid", out=args.out, quick=args.quick, device=device, threads=args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
