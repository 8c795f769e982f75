"""The runner's two kinds of job, behind one interface: a chapter notebook, and a stored trained model.

Every job is a library command run in its own process (``python -m MODULE ARGS``). Where it runs
is the backend's business, not the job's:

* locally (``runner``), the command gets the job's real paths: the notebook next to its chapter, the
  log and scratch files under ``_build/runner/logs``, the model store in ``trained/``;
* on a Dask worker (``cluster``), which shares no filesystem with us, the command runs in a private
  folder: :meth:`RunnerJob.remote` names the files to send there and the files to bring back, and
  :meth:`RunnerJob.receive` puts what came back where the local run would have left it.

Either way :meth:`RunnerJob.finish` then judges the result in the client, and only the client
writes into the repository (atomically), so a job that dies half-way leaves nothing half-written.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .notebooks import Stamp, add_stamp, clean_notebook, write_atomic

NOTEBOOK_MODULE = "backprop2lib.run.job"  # strings, not imports: see ``python -m`` in job.py
MODEL_MODULE = "backprop2lib.store"


@dataclass
class JobResult:
    """What happened to one job (also one row of the report and of records.json)."""

    notebook: Path  # the notebook; for a trained model, ``trained/<name>`` (so ``.name`` is the model's name)
    device: str
    status: str  # "ok" or "failed"
    wall_time_s: float
    retried: bool = False
    cell_index: int | None = None  # 0-based index of the failing cell in the notebook file
    error_name: str | None = None
    error_message: str | None = None
    written_to: Path | None = None
    log_path: Path | None = None
    stamp: str | None = None
    kind: str = "notebook"
    retry_reason: str | None = None  # "dead kernel" or "worker lost"

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass
class Remote:
    """A job as a worker without our filesystem runs it: arguments relative to a private folder,
    the files to put there first, the files to send back, extra environment."""

    args: list[str]
    inputs: dict[str, bytes]
    outputs: list[str]
    env: dict[str, str] = field(default_factory=dict)


def file_sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class NotebookJob:
    """One chapter notebook executed by papermill (``backprop2lib.run.job``)."""

    notebook: Path
    destination: Path
    log_path: Path
    executed_path: Path
    result_path: Path
    input_sha256: str
    stamp: Stamp
    estimate_s: float | None = None
    kind = "notebook"
    module = NOTEBOOK_MODULE

    @property
    def name(self) -> str:
        return self.notebook.name

    def local_args(self, profile: str, timeout: int, start_timeout: int, device: str) -> list[str]:
        return ["--input", str(self.notebook), "--output", str(self.executed_path), "--result",
                str(self.result_path), *self._options(profile, timeout, start_timeout, device)]

    @staticmethod
    def _options(profile: str, timeout: int, start_timeout: int, device: str) -> list[str]:
        return ["--profile", profile, "--timeout", str(timeout), "--start-timeout", str(start_timeout),
                "--device", device]

    def remote(self, profile: str, timeout: int, start_timeout: int) -> Remote:
        name = self.notebook.name
        return Remote(
            args=["--input", f"notebooks/{name}", "--output", "executed.ipynb", "--result", "result.json",
                  *self._options(profile, timeout, start_timeout, "{device}")],
            inputs={f"notebooks/{name}": self.notebook.read_bytes()},
            outputs=["executed.ipynb", "result.json"],
        )

    def receive(self, files: dict[str, bytes]) -> None:
        for relative, target in (("executed.ipynb", self.executed_path), ("result.json", self.result_path)):
            target.unlink(missing_ok=True)
            if relative in files:
                target.write_bytes(files[relative])

    def prepare(self) -> None:
        self.result_path.unlink(missing_ok=True)

    def local_env(self) -> dict[str, str]:
        return {}

    def finish(self, device: str, returncode: int, wall: float, write_back: bool) -> JobResult:
        """Read the job's verdict; on success clean, stamp and write the notebook atomically."""
        result = JobResult(notebook=self.notebook, device=device, status="failed", wall_time_s=wall,
                           log_path=self.log_path, stamp=self.stamp.stamp)
        try:
            verdict = json.loads(self.result_path.read_text())
        except (OSError, ValueError):
            result.error_name = "JobCrashed"
            result.error_message = f"job process exited with code {returncode} without a result; see {self.log_path}"
            return result
        result.retried = bool(verdict.get("retried"))
        if result.retried:
            result.retry_reason = "dead kernel"
        if verdict.get("status") != "ok":
            result.cell_index = verdict.get("cell_index")
            result.error_name = verdict.get("error_name")
            result.error_message = verdict.get("error_message")
            return result
        try:
            if write_back and file_sha256(self.notebook) != self.input_sha256:
                # Someone edited the notebook while it ran: overwriting would lose the edit.
                result.error_name = "SourceChanged"
                result.error_message = f"notebook edited during the run; executed copy kept at {self.executed_path}"
                return result
            nb = nbformat.read(str(self.executed_path), as_version=4)
            clean_notebook(nb)
            add_stamp(nb, self.stamp, device=device, wall_time_s=wall)
            write_atomic(nb, self.destination)
        except Exception as error:  # noqa: BLE001 - report it like any other failure
            result.error_name, result.error_message = type(error).__name__, str(error)
            return result
        self.executed_path.unlink(missing_ok=True)
        result.status, result.written_to = "ok", self.destination
        return result


@dataclass
class TrainedModelJob:
    """One stored trained model (``python -m backprop2lib.store train NAME``), trained before the
    notebooks that load it. Locally it trains into the store itself (resuming its checkpoint in place);
    remotely it gets a private store holding that checkpoint, and sends the model files back."""

    spec: object  # backprop2lib.store.ModelSpec
    profile: str
    store_root: Path
    log_path: Path
    threads: int | None = None
    kind = "trained-model"
    module = MODEL_MODULE

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def estimate_s(self) -> float:
        return float(self.spec.estimate_s)

    @property
    def notebook(self) -> Path:  # the row label, like a notebook's path
        return self.store_root / self.spec.name

    def _args(self, threads: int | None) -> list[str]:
        args = ["train", self.spec.name, "--profile", self.profile, "--in-process"]
        return args + (["--threads", str(threads)] if threads else [])

    def local_args(self, profile: str, timeout: int, start_timeout: int, device: str) -> list[str]:
        return self._args(self.threads) + ["--device", "cuda" if device.startswith("cuda") else "cpu"]

    def _partial(self) -> Path:
        from backprop2lib.store import compute_stamp
        from backprop2lib.store.registry import partial_checkpoint

        return partial_checkpoint(self.spec, compute_stamp(self.spec), self.store_root)

    def remote(self, profile: str, timeout: int, start_timeout: int) -> Remote:
        from backprop2lib.store.artifacts import STORE_ENV, model_paths

        partial = self._partial()
        inputs = {f"store/partial/{partial.name}": partial.read_bytes()} if partial.exists() else {}
        outputs = [f"store/{path.name}" for path in model_paths(self.spec, self.store_root)]
        return Remote(args=self._args(None), inputs=inputs, outputs=outputs, env={STORE_ENV: "{workdir}/store"})

    def receive(self, files: dict[str, bytes]) -> None:
        """Write the model files the worker sent (both or neither) atomically into the store."""
        from backprop2lib.store.artifacts import model_paths

        paths = model_paths(self.spec, self.store_root)
        if not all(f"store/{path.name}" in files for path in paths):
            return
        for path in paths:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_bytes(files[f"store/{path.name}"])
            os.replace(tmp, path)

    def prepare(self) -> None:
        pass

    def local_env(self) -> dict[str, str]:
        from backprop2lib.store.artifacts import STORE_ENV

        return {STORE_ENV: str(self.store_root)}

    def finish(self, device: str, returncode: int, wall: float, write_back: bool) -> JobResult:
        from backprop2lib.store import status

        state = status(self.spec, self.store_root)
        result = JobResult(notebook=self.notebook, device=device, status="failed", wall_time_s=wall,
                           log_path=self.log_path, kind=self.kind)
        if returncode == 0 and state == "fresh":
            result.status, result.written_to = "ok", self.store_root
        else:
            result.error_name = "TrainingFailed"
            result.error_message = f"exit code {returncode}, stored model {state}; see {self.log_path}"
        return result


def python_command(module: str, args: list[str]) -> list[str]:
    return [sys.executable, "-m", module, *args]
