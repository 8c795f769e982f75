"""Command line: ``python -m backprop2lib.store {list,stale,train} [NAME ...] [--profile P] [--jobs N]``.

``list`` prints every trained model of the profile with its status; ``stale`` only those that are
missing, stale or corrupt; ``train`` trains the named models (default: the stale ones, longest
first), resuming from their checkpoints, as jobs of the notebook runner (``backprop2lib.run``: one
process each, ``--jobs`` at a time, or on a Dask cluster with ``--cluster``/``--scheduler``).
``train --in-process`` is what each such job runs: the models one after another in this process.
Exit status 1 when a model failed to train, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..profiles import PROFILES, resolve_profile
from .artifacts import model_paths, status
from .registry import registered_models, stale_models, train_and_save


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backprop2lib.store", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("list", "stale", "train"))
    parser.add_argument("names", nargs="*", help="models to train (default: every stale one)")
    parser.add_argument("--profile", default=None, help=f"one of {', '.join(PROFILES)} (default: $BACKPROP2_PROFILE, "
                                                        "else paper)")
    parser.add_argument("--jobs", type=int, default=1, help="models trained at once, one process each (default 1)")
    parser.add_argument("--threads", type=int, default=None, help="threads per process (default: cores shared out)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: CUDA when visible, else the CPU)")
    parser.add_argument("--in-process", action="store_true",
                        help="train here, one model after another (what each runner job does)")
    parser.add_argument("--cluster", choices=("local", "slurm"), default=None,
                        help="train on a Dask cluster (see python -m backprop2lib.run --help)")
    parser.add_argument("--scheduler", default=None, help="train on the Dask cluster of this scheduler address")
    parser.add_argument("--cluster-config", type=Path, default=None, help="--cluster slurm: its TOML file")
    args = parser.parse_args(argv)
    from ..run.cluster import exit_with_parent

    exit_with_parent()  # on a Dask worker: stop if the worker dies under us
    try:
        profile = resolve_profile(args.profile).name
    except ValueError as error:
        parser.error(str(error))
    specs = [s for s in registered_models(profile) if s.persist]
    if args.command == "list":
        for spec in specs:
            state = status(spec)
            line = f"{spec.name:40s} {state:8s}"
            if state == "fresh":
                info = json.loads(model_paths(spec)[1].read_text())["info"]
                line += f" trained {info.get('finished')} on {info.get('host')} in {info.get('seconds', 0):.0f} s"
            print(line)
        return 0
    if args.command == "stale":
        for spec, state in stale_models(profile):
            print(f"{spec.name} ({state})")
        return 0
    by_name = {s.name: s for s in specs}
    unknown = [n for n in args.names if n not in by_name]
    if unknown:
        parser.error(f"unknown model(s) in profile {profile}: {', '.join(unknown)}; valid: {', '.join(by_name)}")
    chosen = ([by_name[n] for n in args.names] if args.names  # as given; the stale ones longest first
              else sorted((s for s, _ in stale_models(profile)), key=lambda s: -s.estimate_s))
    if not chosen:
        print("no stale trained models; nothing to train", file=sys.stderr)
        return 0
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be at least 1")
    if args.in_process:
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        failed = 0
        for spec in chosen:
            try:
                train_and_save(spec, device=args.device, log=lambda line: print(line, file=sys.stderr, flush=True))
            except Exception as error:  # noqa: BLE001 - report it, carry on with the others
                print(f"{spec.name}: failed: {type(error).__name__}: {error}", file=sys.stderr)
                failed += 1
        return 1 if failed else 0
    from ..run import format_table, run_notebooks
    from ..run.cluster import ClusterError, ClusterOptions

    try:
        cluster = (ClusterOptions(kind=None, scheduler=args.scheduler) if args.scheduler
                   else ClusterOptions(kind=args.cluster, config=args.cluster_config) if args.cluster else None)
    except ValueError as error:
        parser.error(str(error))
    try:
        results = run_notebooks([], profile=profile, models=chosen, jobs=args.jobs, threads_per_job=args.threads,
                                gpu_ids=[] if args.device == "cpu" else None, cluster=cluster)
    except ClusterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(format_table(results))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
