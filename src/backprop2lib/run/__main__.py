"""Command line: ``python -m backprop2lib.run [NOTEBOOK ...] [options]``.

Exit status: 0 when every notebook ran, 1 when any failed, 2 for a usage error
(unknown profile, missing notebook, a file that is not an .ipynb). ``--list-stale`` only reports and exits 0.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from backprop2lib.profiles import ENV_VAR, PROFILES, resolve_profile

from .cluster import CLUSTER_KINDS, ClusterError, ClusterOptions
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
    dask = parser.add_argument_group("Dask cluster (default: local processes, no Dask)")
    where = dask.add_mutually_exclusive_group()
    where.add_argument("--cluster", choices=CLUSTER_KINDS, default=None,
                       help="local: a Dask LocalCluster on this machine (one worker per core, or one for the GPUs); "
                       "slurm: workers as Slurm jobs (dask-jobqueue), configured by --cluster-config")
    where.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="an existing Dask scheduler, e.g. tcp://HOST:8786 or tls://HOST:8786")
    dask.add_argument("--cluster-config", type=Path, default=None,
                      help="--cluster slurm: a TOML file with a [slurm] table (see README)")
    dask.add_argument("--workers", type=int, default=None, help="--cluster local: worker processes (default: cores)")
    dask.add_argument("--connect-timeout", type=float, default=30.0,
                      help="seconds to reach --scheduler before giving up (default 30)")
    dask.add_argument("--tls-ca-file", type=Path, default=None, help="TLS: the cluster's CA certificate")
    dask.add_argument("--tls-cert", type=Path, default=None, help="TLS: this client's certificate")
    dask.add_argument("--tls-key", type=Path, default=None, help="TLS: this client's private key")
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
    cluster = None
    if args.cluster or args.scheduler or args.tls_ca_file or args.tls_cert or args.tls_key:
        try:
            cluster = ClusterOptions(
                kind=None if args.scheduler else (args.cluster or "local"), scheduler=args.scheduler,
                workers=args.workers, jobs_per_gpu=args.jobs_per_gpu, config=args.cluster_config,
                tls_ca_file=args.tls_ca_file, tls_cert=args.tls_cert, tls_key=args.tls_key,
                connect_timeout=args.connect_timeout)
        except ValueError as error:
            parser.error(str(error))
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

    models = []
    if args.list_stale or args.stale:
        from backprop2lib.store import stale_models

        chapters = {Path(path).name.split("_")[0] for path in notebooks}  # the stored models of these chapters
        stale_stored = [(spec, state) for spec, state in stale_models(profile) if spec.chapter in chapters]
        notebooks = [path for path in notebooks if is_stale(path, profile=profile)]  # stamped under another profile: stale
        if args.list_stale:
            for path in notebooks:
                print(_display(path))
            for spec, state in stale_stored:
                print(f"trained model {spec.name} ({state})")
            return 0
        models = [spec for spec, _ in stale_stored]  # the notebooks load them: the runner trains them first
        if models:
            print(f"training {len(models)} stale stored model(s) first: {', '.join(s.name for s in models)}",
                  file=sys.stderr)
        if not notebooks and not models:
            print("no stale notebooks; nothing to run", file=sys.stderr)
            return 0

    try:
        results = run_notebooks(
            notebooks, profile=profile, jobs=args.jobs, jobs_per_gpu=args.jobs_per_gpu,
            threads_per_job=args.threads_per_job, timeout=args.timeout,
            start_timeout=args.start_timeout, root=root, output_dir=args.output_dir, log_dir=args.log_dir,
            records_path=args.records, progress=not args.no_progress, models=models, cluster=cluster,
        )
    except ClusterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError) as error:
        parser.error(str(error))
    print(format_table(results))
    failed = [r for r in results if not r.ok]
    print(f"\n{len(results) - len(failed)} ok, {len(failed)} failed (profile {profile})")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
