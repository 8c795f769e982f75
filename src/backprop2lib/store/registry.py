"""The chapters' trained models, and getting them: load a fresh one, train a missing or stale one.

Each module in :data:`PROVIDERS` has ``trained_models(profile) -> list[ModelSpec]`` and the
``train`` function its specs name. :func:`obtain` is what a notebook calls: in ``smoke`` (specs
with ``persist=False``) it trains from scratch at the tiny scale and never touches the store; in
``paper`` and ``full`` it loads the stored model when its stamp matches, and otherwise says why
and how long training will take, trains, saves and returns it.

Training resumes: an unfinished run keeps its checkpoint in ``partial/<name>-<stamp>.pt`` inside
the store, so an interrupted job (or one stopped at the end of a working session and committed)
carries on from there with the same numbers. A checkpoint written by other code (another stamp)
is never resumed; it is deleted when that model is trained again.
"""

from __future__ import annotations

import datetime
import importlib
import os
import platform
import time
from pathlib import Path
from typing import Callable

import torch

from .artifacts import ModelSpec, StoredModel, StoreError, compute_stamp, default_root, load, save, status

PROVIDERS = ("backprop2lib.learned.catalogue", "backprop2lib.recognition.catalogue")
"""Modules that declare trained models: each has ``trained_models(profile)`` and ``train``."""
EXTRA_PROVIDERS_ENV = "BACKPROP2_STORE_PROVIDERS"
"""More provider modules, comma-separated (tests; a researcher's own models), after :data:`PROVIDERS`."""


def providers() -> tuple[str, ...]:
    extra = [name.strip() for name in os.environ.get(EXTRA_PROVIDERS_ENV, "").split(",") if name.strip()]
    return PROVIDERS + tuple(extra)


def registered_models(profile: str) -> list[ModelSpec]:
    """Every trained model the chapters use in ``profile``, in the providers' order."""
    specs: list[ModelSpec] = []
    for name in providers():
        specs.extend(importlib.import_module(name).trained_models(profile))
    names = [s.name for s in specs]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"trained models: names used twice: {', '.join(duplicated)}")
    return specs


def stale_models(profile: str, root: Path | None = None) -> list[tuple[ModelSpec, str]]:
    """``(spec, status)`` of every stored model of ``profile`` that is not fresh (missing, stale or corrupt)."""
    out = []
    for spec in registered_models(profile):
        if spec.persist:
            state = status(spec, root)
            if state != "fresh":
                out.append((spec, state))
    return out


def partial_checkpoint(spec: ModelSpec, stamp: str, root: Path | None = None) -> Path:
    """Where an unfinished training run of ``spec`` under the current code keeps its checkpoint."""
    base = Path(root) if root is not None else default_root()
    return base / "partial" / f"{spec.name}-{stamp[:16]}.pt"


def train_and_save(spec: ModelSpec, root: Path | None = None, *, progress: bool | None = None,
                   log: Callable[[str], None] = print, device: str | torch.device | None = None) -> StoredModel:
    """Train ``spec`` (resuming from its partial checkpoint) on ``device`` (default: CUDA when visible, else the
    CPU; ``$BACKPROP2_DEVICE`` overrides), then save it (unless ``persist`` is False)."""
    from ..runtime import describe_device, pick_device

    module = importlib.import_module(spec.module)
    device = pick_device(None if device is None else str(device))
    started = time.perf_counter()
    when = datetime.datetime.now(datetime.timezone.utc)
    info = {"started": when.strftime("%Y-%m-%d %H:%M UTC"), "host": platform.node() or "?",
            "device": describe_device(device), "threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version()}
    if not spec.persist:
        state, record = module.train(spec, None, progress, device=device)
        info.update(seconds=time.perf_counter() - started,
                    finished=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
        return StoredModel(spec, state, "", record, info, source="trained now (not stored in this profile)")
    stamp = compute_stamp(spec)
    checkpoint = partial_checkpoint(spec, stamp, root)
    for old in checkpoint.parent.glob(f"{spec.name}-*.pt"):
        if old != checkpoint:
            log(f"{spec.name}: deleting {old.name}, a checkpoint of other code")
            old.unlink()
    if checkpoint.exists():
        log(f"{spec.name}: resuming from {checkpoint.parent.name}/{checkpoint.name}")
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    state, record = module.train(spec, checkpoint, progress, device=device)
    info.update(seconds=record.get("seconds", time.perf_counter() - started),
                session_seconds=time.perf_counter() - started,
                finished=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    stored = save(spec, state, record, info, stamp=stamp, root=root)
    checkpoint.unlink(missing_ok=True)
    return stored


def obtain(spec: ModelSpec, root: Path | None = None, *, progress: bool | None = None,
           log: Callable[[str], None] = print, device: str | torch.device | None = None) -> StoredModel:
    """The trained model: loaded when fresh, otherwise trained now (saying why and for about how long)."""
    if spec.persist:
        state = status(spec, root)
        if state == "fresh":
            try:
                stored = load(spec, root)
            except StoreError as err:  # e.g. the .pt is corrupt though its JSON is fine
                log(f"{spec.name}: {err}")
            else:
                log(stored.describe())
                return stored
        else:
            log(f"{spec.name}: the stored model is {state}; training it now, about {_minutes(spec.estimate_s)} "
                f"on 2 CPU cores (or `python -m backprop2lib.store train {spec.name}` beforehand)")
    return train_and_save(spec, root, progress=progress, log=log, device=device)


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"
