"""Command line: ``python -m backprop2lib.store {list,stale,train} [NAME ...] [--profile P] [--jobs N]``.

``list`` prints every trained model of the profile with its status; ``stale`` only those that are
missing, stale or corrupt; ``train`` trains the named models (default: the stale ones), resuming
from their checkpoints. Exit status 1 when a model failed to train, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..profiles import PROFILES, resolve_profile
from .artifacts import model_paths, status
from .registry import registered_models, stale_models, train_models


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backprop2lib.store", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("list", "stale", "train"))
    parser.add_argument("names", nargs="*", help="models to train (default: every stale one)")
    parser.add_argument("--profile", default=None, help=f"one of {', '.join(PROFILES)} (default: $BACKPROP2_PROFILE, "
                                                        "else paper)")
    parser.add_argument("--jobs", type=int, default=1, help="models trained at once, one process each (default 1)")
    parser.add_argument("--threads", type=int, default=None, help="threads per process (default: cores shared out)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: CUDA when visible, else the CPU)")
    args = parser.parse_args(argv)
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
    results = train_models(chosen, jobs=args.jobs, threads=args.threads, device=args.device)
    failed = [r for r in results if r[2] != "trained"]
    for name, seconds, outcome in results:
        print(f"{name:40s} {outcome} ({seconds:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
