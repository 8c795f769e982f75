"""Command line: ``python -m backprop2lib.run [NOTEBOOK ...] [options]``.

Exit status: 0 when every notebook ran, 1 when any failed, 2 for a usage error
(unknown profile, missing notebook, a file that is not an .ipynb). ``--list-stale`` only reports and exits 0.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from backprop2lib.profiles import ENV_VAR, PROFILES, resolve_profile

from .notebooks import is_stale
from .runner import (
    DEFAULT_START_TIMEOUT,
    DEFAULT_TIMEOUT,
    NOTEBOOK_GLOB,
    default_notebooks,
    format_table,
    run_notebooks,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m backprop2lib.run",
        description="Execute the book's notebooks in parallel with papermill (one process per notebook), "
        "then clean, stamp and write back those that succeeded.",
    )
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help=f"notebooks to run (default: notebooks/{NOTEBOOK_GLOB} under --root)")
    parser.add_argument("--root", type=Path, default=None, help="repository root (default: the current directory)")
    parser.add_argument("--profile", default=None,
                        help=f"one of {', '.join(PROFILES)} (default: ${ENV_VAR}, else paper)")
    parser.add_argument("--jobs", type=int, default=None,
                        help="CPU workers when no GPU is visible (default: one per core, at most one per notebook)")
    parser.add_argument("--jobs-per-gpu", type=int, default=1, help="concurrent jobs sharing each GPU (default 1)")
    parser.add_argument("--threads-per-job", type=int, default=None,
                        help="OMP/MKL threads per job (default: cores // concurrent jobs)")
    parser.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT,
                        help=f"per-cell execution timeout in seconds (default {DEFAULT_TIMEOUT})")
    parser.add_argument("--start-timeout", type=int, default=DEFAULT_START_TIMEOUT,
                        help=f"kernel start timeout in seconds (default {DEFAULT_START_TIMEOUT})")
    selection = parser.add_mutually_exclusive_group()
    selection.add_argument("--stale", action="store_true",
                           help="train the selected chapters' stale stored models (backprop2lib.store), then run "
                           "only notebooks whose stamp is missing or out of date")
    selection.add_argument("--list-stale", action="store_true",
                           help="print the stale notebooks and the selected chapters' stale stored models, exit 0")
    parser.add_argument("--output-dir", type=Path, default=None,
                        help="where executed notebooks go (smoke default: _build/smoke; paper/full default: in place)")
    parser.add_argument("--log-dir", type=Path, default=None, help="per-notebook logs (default: _build/runner/logs)")
    parser.add_argument("--records", type=Path, default=None,
                        help="machine-readable run records (default: _build/runner/records.json)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar or per-notebook lines")
    return parser


def _display(path: Path) -> str:
    # Relative to the current directory when possible: short, and pasteable back in.
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        profile = resolve_profile(args.profile).name
    except ValueError as error:
        parser.error(str(error))
    if args.jobs is not None and args.jobs < 1:
        parser.error("--jobs must be at least 1")
    if args.jobs_per_gpu < 1:
        parser.error("--jobs-per-gpu must be at least 1")
    if args.threads_per_job is not None and args.threads_per_job < 1:
        parser.error("--threads-per-job must be at least 1")
    root = (args.root or Path.cwd()).resolve()
    notebooks = list(args.notebooks) or default_notebooks(root)
    missing = [str(path) for path in notebooks if not Path(path).is_file()]
    if missing:
        parser.error(f"notebook(s) not found: {', '.join(missing)}")
    not_ipynb = [str(path) for path in notebooks if Path(path).suffix != ".ipynb"]
    if not_ipynb:  # e.g. a chapter's .md, its jupytext twin without outputs: the runner executes the .ipynb
        parser.error(f"not .ipynb notebooks: {', '.join(not_ipynb)} (run the paired .ipynb instead)")
    if not notebooks:
        parser.error(f"no notebooks given and none match {root / 'notebooks' / NOTEBOOK_GLOB}")

    if args.list_stale or args.stale:
        from backprop2lib.store import stale_models, train_models

        chapters = {Path(path).name.split("_")[0] for path in notebooks}  # the stored models of these chapters
        stale_stored = [(spec, state) for spec, state in stale_models(profile) if spec.chapter in chapters]
        notebooks = [path for path in notebooks if is_stale(path, profile=profile)]  # stamped under another profile: stale
        models = sorted((spec for spec, _ in stale_stored), key=lambda spec: -spec.estimate_s)
        if args.list_stale:
            for path in notebooks:
                print(_display(path))
            for spec, state in stale_stored:
                print(f"trained model {spec.name} ({state})")
            return 0
        if models:  # the notebooks load them: stored models first, longest first
            print(f"training {len(models)} stale stored model(s) first: {', '.join(s.name for s in models)}",
                  file=sys.stderr)
            trained = train_models(models, jobs=args.jobs or 1, threads=args.threads_per_job)
            failed = [f"{name}: {outcome}" for name, _, outcome in trained if outcome != "trained"]
            if failed:
                print("stored models that failed to train:\n" + "\n".join(failed), file=sys.stderr)
                return 1
        if not notebooks:
            print("no stale notebooks; nothing to run", file=sys.stderr)
            return 0

    try:
        results = run_notebooks(
            notebooks, profile=profile, jobs=args.jobs, jobs_per_gpu=args.jobs_per_gpu,
            threads_per_job=args.threads_per_job, timeout=args.timeout,
            start_timeout=args.start_timeout, root=root, output_dir=args.output_dir, log_dir=args.log_dir,
            records_path=args.records, progress=not args.no_progress,
        )
    except (ValueError, FileNotFoundError) as error:
        parser.error(str(error))
    print(format_table(results))
    failed = [r for r in results if not r.ok]
    print(f"\n{len(results) - len(failed)} ok, {len(failed)} failed (profile {profile})")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
