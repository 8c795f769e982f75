"""One stored model: its specification, stamp, files and the checks made when it is loaded.

A model is specified by a :class:`ModelSpec`: a name (the file stem), the chapter that uses it,
the library module whose ``train`` function trains it, and a JSON configuration that says
everything the training depends on. Its *stamp* is a sha256 over the configuration and the bytes
of every library file the training module imports, transitively (the modules it names, not their
parent packages: :func:`code_modules`). Editing any of that code makes the stored model stale.

On disk (``trained/`` at the repository root, or ``$BACKPROP2_STORE``) a model is two files:
``<name>.pt`` (``torch.save`` of the parameters with the stamp and configuration) and
``<name>.json`` (the stamp, configuration and the training record: when, where, on what device,
how long, the validation curve and any evaluation the job made), readable in a diff. Arrays in
the record (NumPy or torch) go into the ``.pt`` file and the JSON names them, so the text stays
small. Both are
written atomically. :func:`load` refuses, with a :class:`StoreError` naming the file, a file that
cannot be read, two files that disagree, a configuration that differs from the spec's, or a stamp
that differs from the current code's. Nothing is ever silently reused.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

FORMAT = "backprop2-model/1"
STORE_ENV = "BACKPROP2_STORE"


class StoreError(ValueError):
    """A stored model that cannot be used as it is: missing, stale, mismatched or corrupt."""


@dataclass(frozen=True)
class ModelSpec:
    """What one stored model is and how it is trained.

    ``module`` names a library module with ``train(spec, checkpoint, progress, device=...) -> (state, record)``:
    ``state`` a dict of tensors (the parameters), ``record`` a JSON-able dict of what the training
    measured; ``checkpoint`` a file to resume from and save to (or None). ``estimate_s`` is the
    expected training time on a 2-core CPU, for messages. ``persist=False`` (the ``smoke`` profile)
    trains every time and never touches the store.
    """

    name: str
    chapter: str
    module: str
    config: Mapping[str, Any]
    estimate_s: float = 0.0
    persist: bool = True

    def __post_init__(self) -> None:
        if not self.name or any(c in self.name for c in "/\\ ") or self.name.startswith("."):
            raise ValueError(f"name: expected a plain file stem, got {self.name!r}")
        if not self.module.startswith("backprop2lib."):
            raise ValueError(f"module: expected a backprop2lib module, got {self.module!r}")
        try:
            json.dumps(self.config, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as err:
            raise ValueError(f"config: expected JSON-able values, {err}") from err


@dataclass(frozen=True, eq=False)
class StoredModel:
    """A trained model: its spec, parameters, stamp and what the training recorded."""

    spec: ModelSpec
    state: dict[str, torch.Tensor]
    stamp: str
    record: dict[str, Any] = field(default_factory=dict)  # what the training measured
    info: dict[str, Any] = field(default_factory=dict)  # when, where, device, seconds
    source: str = "trained now"  # or "loaded from <path>"

    def describe(self) -> str:
        """One line for a notebook's output: where the model came from, when, where and how long it trained."""
        i = self.info
        return (f"{self.spec.name}: {self.source}; trained {i.get('finished', '?')} on {i.get('host', '?')} "
                f"({i.get('device', '?')}) in {_duration(i.get('seconds'))}; stamp {self.stamp[:12]}")


def _duration(seconds) -> str:
    if not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        return "?"
    return f"{seconds:.0f} s" if seconds < 600 else f"{seconds / 60:.0f} min"


def default_root() -> Path:
    """``$BACKPROP2_STORE``, else ``trained/`` at the repository root of this checkout."""
    env = os.environ.get(STORE_ENV)
    if env:
        return Path(env)
    from ..run.notebooks import PACKAGE_ROOT

    return PACKAGE_ROOT.resolve().parent.parent / "trained"


def code_modules(module: str) -> list[str]:
    """The library files ``module``'s training code can call: it and what it imports, transitively."""
    from ..run.notebooks import library_modules

    return [m for m in library_modules([f"import {module}"], parents=False) if not m.startswith(_INFRASTRUCTURE)]


_INFRASTRUCTURE = ("backprop2lib/store/", "backprop2lib/run/", "backprop2lib/__init__.py")
"""Not part of any model: the store and runner that move models around, and the package's version line."""


def compute_stamp(spec: ModelSpec) -> str:
    """sha256 over the format, the configuration and every file of :func:`code_modules` (path and bytes)."""
    from ..run.notebooks import PACKAGE_ROOT

    root = PACKAGE_ROOT.resolve()
    digest = hashlib.sha256(FORMAT.encode())

    def field_(tag: bytes, data: bytes) -> None:  # length-prefixed: no two inputs hash the same stream
        digest.update(tag + len(data).to_bytes(8, "big") + data)

    field_(b"config", json.dumps(spec.config, sort_keys=True).encode())
    modules = code_modules(spec.module)
    if not any(m == spec.module.replace(".", "/") + ".py" or m == spec.module.replace(".", "/") + "/__init__.py"
               for m in modules):
        raise StoreError(f"module: {spec.module} not found under {root}")
    for module in modules:
        field_(b"path", module.encode())
        field_(b"file", (root.parent / module).read_bytes())
    return digest.hexdigest()


def model_paths(spec: ModelSpec, root: Path | None = None) -> tuple[Path, Path]:
    """``(<name>.pt, <name>.json)`` in the store."""
    base = Path(root) if root is not None else default_root()
    return base / f"{spec.name}.pt", base / f"{spec.name}.json"


def _write_atomic(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)  # readers see the old file or the new one, never half of one


def _split_arrays(value, arrays: dict, key: str = "record"):
    """``value`` with every array replaced by a reference ``{"array": key, "shape", "dtype"}``; the arrays go in ``arrays``."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        arrays[key] = torch.from_numpy(np.ascontiguousarray(value))
        return {"array": key, "shape": list(value.shape), "dtype": str(value.dtype)}
    if isinstance(value, Mapping):
        return {k: _split_arrays(v, arrays, f"{key}/{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_split_arrays(v, arrays, f"{key}/{i}") for i, v in enumerate(value)]
    return value


def _join_arrays(value, arrays: Mapping[str, torch.Tensor], where: Path):
    if isinstance(value, Mapping) and set(value) == {"array", "shape", "dtype"}:
        if value["array"] not in arrays:
            raise StoreError(f"{where}: the record names an array {value['array']!r} the parameter file lacks")
        return arrays[value["array"]].numpy()
    if isinstance(value, Mapping):
        return {k: _join_arrays(v, arrays, where) for k, v in value.items()}
    if isinstance(value, list):
        return [_join_arrays(v, arrays, where) for v in value]
    return value


def save(spec: ModelSpec, state: Mapping[str, torch.Tensor], record: Mapping[str, Any], info: Mapping[str, Any],
         *, stamp: str | None = None, root: Path | None = None) -> StoredModel:
    """Write the model's two files (the parameters first, so the JSON never names a missing .pt)."""
    stamp = stamp or compute_stamp(spec)
    pt, js = model_paths(spec, root)
    pt.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().clone() for k, v in state.items()}
    arrays: dict[str, torch.Tensor] = {}
    record_text = _split_arrays(dict(record), arrays)
    _write_atomic(pt, lambda p: torch.save({"format": FORMAT, "name": spec.name, "stamp": stamp,
                                            "config": dict(spec.config), "state": state, "arrays": arrays}, p))
    text = json.dumps({"format": FORMAT, "name": spec.name, "chapter": spec.chapter, "module": spec.module,
                       "stamp": stamp, "config": spec.config, "info": info, "record": record_text},
                      indent=1, sort_keys=True, allow_nan=True)
    _write_atomic(js, lambda p: p.write_text(text + "\n", encoding="utf-8"))
    return StoredModel(spec, state, stamp, _join_arrays(record_text, arrays, pt), dict(info),
                       source=f"saved to {pt.parent}")


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise StoreError(f"{path}: not a readable stored-model record ({err}); delete it and retrain") from err
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise StoreError(f"{path}: not a {FORMAT} record; delete it and retrain")
    return data


def status(spec: ModelSpec, root: Path | None = None, *, stamp: str | None = None) -> str:
    """``"fresh"``, ``"missing"``, ``"stale"`` (another stamp or configuration) or ``"corrupt"`` (from the JSON;
    :func:`load` also reads the parameters)."""
    pt, js = model_paths(spec, root)
    if not js.exists() and not pt.exists():
        return "missing"
    if not js.exists() or not pt.exists():
        return "corrupt"
    try:
        data = _read_json(js)
    except StoreError:
        return "corrupt"
    if data.get("config") != json.loads(json.dumps(spec.config)) or data.get("stamp") != (stamp or compute_stamp(spec)):
        return "stale"
    return "fresh"


def load(spec: ModelSpec, root: Path | None = None) -> StoredModel:
    """The stored model, after checking both files against each other, the spec and the current code."""
    pt, js = model_paths(spec, root)
    if not js.exists() and not pt.exists():
        raise StoreError(f"{js}: no stored model {spec.name!r}; train it with "
                         f"`python -m backprop2lib.store train {spec.name}`")
    for path in (js, pt):
        if not path.exists():
            raise StoreError(f"{path}: missing (its pair exists); delete both and retrain")
    data = _read_json(js)
    try:
        saved = torch.load(pt, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same clear error
        raise StoreError(f"{pt}: could not read the stored parameters ({type(err).__name__}: {err}); "
                         "delete it and retrain") from err
    if not isinstance(saved, dict) or saved.get("format") != FORMAT or not isinstance(saved.get("state"), dict):
        raise StoreError(f"{pt}: not a {FORMAT} parameter file; delete it and retrain")
    if saved.get("stamp") != data.get("stamp") or saved.get("name") != spec.name:
        raise StoreError(f"{pt}: its stamp or name does not match {js.name}; the pair was mixed up, retrain")
    wanted = json.loads(json.dumps(spec.config))
    if data.get("config") != wanted:
        raise StoreError(f"{js}: trained with another configuration; stored {data.get('config')}, wanted {wanted}")
    current = compute_stamp(spec)
    if data["stamp"] != current:
        raise StoreError(f"{js}: stale, trained from other code (stamp {data['stamp'][:12]}, the code now "
                         f"{current[:12]}); retrain with `python -m backprop2lib.store train {spec.name}`")
    record = _join_arrays(data.get("record", {}), saved.get("arrays", {}), pt)
    return StoredModel(spec, saved["state"], data["stamp"], record, data.get("info", {}),
                       source=f"loaded from the store ({js.parent.name}/{js.name})")
