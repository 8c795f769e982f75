"""Executed notebooks made fit for git: cleaning, stamps, atomic writes.

*Cleaning* removes what changes from run to run without carrying information
(papermill timings, execution counts, widget state, memory addresses, progress-bar
redraws), so a re-run with the same results gives a small diff.

*Stamps* say which inputs produced the committed outputs: a sha256 over the code
cells, the profile and the library source files the notebook imports (followed
transitively with ``ast``). When any of them changes, the outputs are stale.
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import nbformat

import backprop2lib

PACKAGE_ROOT = Path(backprop2lib.__file__).resolve().parent
INJECTED_TAG = "injected-parameters"  # papermill tags the cell it inserts this way
ERROR_MARKER_TAG = "papermill-error-cell-tag"
METADATA_KEY = "backprop2"
STAMP_VERSION = b"backprop2-stamp/1"

_ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,}")


# --------------------------------------------------------------------------- cleaning


def _tags(cell: Mapping[str, Any]) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _join(text: str | list[str]) -> str:
    return "".join(text) if isinstance(text, list) else text


def collapse_carriage_returns(text: str) -> str:
    r"""What a terminal finally shows: per line, the text after the last ``\r``.

    A trailing ``\r`` (a bar that has not been redrawn yet) keeps the previous segment.
    """
    text = text.replace("\r\n", "\n")
    lines = []
    for line in text.split("\n"):
        segments = [segment for segment in line.split("\r") if segment]
        lines.append(segments[-1] if segments else "")
    return "\n".join(lines)


def scrub_addresses(text: str) -> str:
    """``<Foo object at 0x7f3a...>`` -> ``<Foo object at 0x...>``."""
    return _ADDRESS.sub("0x...", text)


def _coalesce_streams(outputs: list) -> list:
    # Several stream chunks in a row are one terminal; merging them first lets a "\r"
    # in one chunk overwrite text printed by the previous chunk.
    merged: list = []
    for output in outputs:
        if (
            output.get("output_type") == "stream"
            and merged
            and merged[-1].get("output_type") == "stream"
            and merged[-1].get("name") == output.get("name")
        ):
            merged[-1]["text"] = _join(merged[-1]["text"]) + _join(output["text"])
        else:
            merged.append(output)
    return merged


def _clean_output(output: dict, count: int) -> None:
    kind = output.get("output_type")
    if "execution_count" in output:
        output["execution_count"] = count
    if kind == "stream":
        output["text"] = scrub_addresses(collapse_carriage_returns(_join(output["text"])))
    elif kind in ("execute_result", "display_data"):
        data = output.get("data", {})
        for mime, value in data.items():
            if mime.startswith("text/") and isinstance(value, (str, list)):
                data[mime] = scrub_addresses(_join(value))
    elif kind == "error":
        output["evalue"] = scrub_addresses(output.get("evalue", ""))
        output["traceback"] = [scrub_addresses(line) for line in output.get("traceback", [])]


def clean_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Strip run-to-run noise from an executed notebook, in place (also returned).

    Keeps the outputs and the ``parameters`` tag. Drops papermill's ``injected-parameters``
    cell: left in a committed notebook, its ``profile = "paper"`` would override
    ``$BACKPROP2_PROFILE`` for nbval and JupyterLab. The profile that ran is in the stamp.
    """
    nb.metadata.pop("papermill", None)
    nb.metadata.pop("widgets", None)
    nb.cells = [cell for cell in nb.cells if not {ERROR_MARKER_TAG, INJECTED_TAG} & set(_tags(cell))]
    # Execution counts are renumbered 1, 2, 3, ... over the code cells: the same on every run
    # (no diff noise), and not None, which nbval reads as "never run" and rejects with outputs.
    count = 0
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if cell.metadata.get("tags") == []:  # papermill adds empty tag lists everywhere
            del cell.metadata["tags"]
        if cell.cell_type != "code":
            continue
        count += 1
        cell.execution_count = count
        cell.outputs = _coalesce_streams(cell.get("outputs", []))
        for output in cell.outputs:
            _clean_output(output, count)
    return nb


# ------------------------------------------------------------------- library imports


def _module_file(package_root: Path, module: str) -> Path | None:
    """The file of ``backprop2lib.a.b`` under ``package_root`` (module or package)."""
    parts = module.split(".")[1:]
    base = package_root.joinpath(*parts)
    for candidate in (base / "__init__.py", base.with_suffix(".py") if parts else None):
        if candidate is not None and candidate.is_file():
            return candidate
    return None


def _with_parents(module: str) -> list[str]:
    # Importing a.b.c runs a/__init__, a/b/__init__ and a/b/c: all of them matter.
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _parse(source: str) -> ast.AST | None:
    try:
        return ast.parse(source)
    except SyntaxError:
        pass
    try:  # notebook cells may hold IPython syntax (%magics, !shell)
        from IPython.core.inputtransformer2 import TransformerManager

        return ast.parse(TransformerManager().transform_cell(source))
    except (ImportError, SyntaxError):
        return None


def _imported_modules(tree: ast.AST, package: str, current: str | None, is_package: bool, package_root: Path):
    """Module names inside ``package`` that ``tree`` imports (``current``: the module
    being scanned, for relative imports; None for notebook cells)."""
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names if alias.name.split(".")[0] == package)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if current is None:
                    continue
                anchor = current.split(".")
                if not is_package:
                    anchor = anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)] if node.level > 1 else anchor
                if not anchor:
                    continue
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base.split(".")[0] != package:
                continue
            found.append(base)
            for alias in node.names:  # ``from pkg import sub`` may name a submodule
                if alias.name != "*" and _module_file(package_root, f"{base}.{alias.name}") is not None:
                    found.append(f"{base}.{alias.name}")
    return found


def library_modules(code_sources: Iterable[str], package_root: Path | None = None, *,
                    parents: bool = True) -> list[str]:
    """Library files the code imports, transitively, as sorted ``package/...py`` paths.

    The package is named after ``package_root`` (default: the installed backprop2lib). With
    ``parents`` (a notebook's stamp), every parent package's ``__init__.py`` of an imported module
    counts too, since importing ``a.b.c`` runs them, and the package's own ``__init__.py`` always
    does. Without (a trained model's stamp, :mod:`backprop2lib.store`), only the modules the code
    imports by name, and what they import, count: the code whose functions it can call. Only
    static imports are seen.
    """
    root = Path(package_root or PACKAGE_ROOT).resolve()
    package = root.name
    pending = [package] if parents else []
    for source in code_sources:
        tree = _parse(source)
        if tree is not None:
            pending.extend(_imported_modules(tree, package, None, False, root))
    seen: dict[str, Path] = {}
    while pending:
        popped = pending.pop()
        for name in (_with_parents(popped) if parents else [popped]):
            if name in seen:
                continue
            path = _module_file(root, name)
            if path is None:  # an attribute, or a module that does not exist
                continue
            seen[name] = path
            tree = _parse(path.read_text(encoding="utf-8"))
            if tree is not None:
                pending.extend(_imported_modules(tree, package, name, path.name == "__init__.py", root))
    return sorted(path.relative_to(root.parent).as_posix() for path in seen.values())


# ------------------------------------------------------------------------------ stamps


@dataclass(frozen=True)
class Stamp:
    stamp: str
    profile: str
    library_modules: tuple[str, ...]


def stamped_code_sources(nb: nbformat.NotebookNode) -> list[str]:
    """Code cells that define the notebook: all but papermill's injected parameters
    (whose text would differ between an unexecuted and an executed copy)."""
    return [
        _join(cell.source) for cell in nb.cells if cell.cell_type == "code" and INJECTED_TAG not in _tags(cell)
    ]


def compute_stamp(nb: nbformat.NotebookNode, profile: str, package_root: Path | None = None) -> Stamp:
    """sha256 over code cells, profile and imported library files (path + bytes)."""
    root = Path(package_root or PACKAGE_ROOT).resolve()
    sources = stamped_code_sources(nb)
    modules = library_modules(sources, root)
    digest = hashlib.sha256(STAMP_VERSION)

    def field(tag: bytes, data: bytes) -> None:
        # Length-prefixed fields: no two different inputs can hash the same stream.
        digest.update(tag + len(data).to_bytes(8, "big") + data)

    field(b"profile", profile.encode())
    for source in sources:
        field(b"cell", source.encode())
    for module in modules:
        field(b"path", module.encode())
        field(b"file", (root.parent / module).read_bytes())
    return Stamp(stamp=digest.hexdigest(), profile=profile, library_modules=tuple(modules))


def add_stamp(
    nb: nbformat.NotebookNode,
    stamp: Stamp,
    *,
    device: str,
    wall_time_s: float,
    executed: str | None = None,
) -> nbformat.NotebookNode:
    """Record the stamp and how the run went in ``nb.metadata['backprop2']``."""
    nb.metadata[METADATA_KEY] = {
        "stamp": stamp.stamp,
        "profile": stamp.profile,
        "library_modules": list(stamp.library_modules),
        "device": device,
        "wall_time_s": round(float(wall_time_s), 1),
        "library_version": backprop2lib.__version__,
        "executed": executed or datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return nb


def read_stamp(nb: nbformat.NotebookNode) -> dict | None:
    meta = nb.metadata.get(METADATA_KEY)
    return dict(meta) if isinstance(meta, Mapping) and meta.get("stamp") else None


def is_stale(path: str | Path, package_root: Path | None = None, profile: str | None = None) -> bool:
    """True when the notebook has no stamp or its stamp no longer matches its inputs.

    The stamp is recomputed with the stored profile (or ``profile`` if given, which
    makes a notebook stamped under another profile stale).
    """
    nb = nbformat.read(str(path), as_version=4)
    stored = read_stamp(nb)
    if stored is None:
        return True
    current = compute_stamp(nb, profile or stored.get("profile", ""), package_root)
    return current.stamp != stored["stamp"]


def stale_notebooks(paths: Iterable[str | Path], package_root: Path | None = None) -> list[Path]:
    return [Path(path) for path in paths if is_stale(path, package_root)]


# ------------------------------------------------------------------------------ writes


def write_atomic(nb: nbformat.NotebookNode, path: str | Path) -> None:
    """Write ``nb`` so that ``path`` is always either the old or the complete new file.

    Serialise first (a bad notebook raises before anything is touched), write a temp
    file in the same folder (same filesystem) and ``os.replace`` it over the target.
    """
    path = Path(path)
    text = nbformat.writes(nb)
    if not text.endswith("\n"):
        text += "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates 0600; keep the target's mode (or the usual 0644 under umask).
        try:
            mode = path.stat().st_mode & 0o777
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
