"""Progress bars for long loops (tqdm.auto), quiet where nobody is watching.

``BACKPROP2_PROGRESS=0`` turns bars off (the runner sets it so committed notebooks
do not carry hundreds of bar updates). Without ipywidgets, tqdm.auto would warn and
fall back to text; we pick the text bar directly to keep stderr clean.
"""

from __future__ import annotations

import importlib.util
import os


def progress_enabled() -> bool:
    return os.environ.get("BACKPROP2_PROGRESS", "1").strip().lower() not in ("0", "false", "no", "off")


def progress_bar(total: int, desc: str, enabled: bool | None = None):
    if enabled is None:
        enabled = progress_enabled()
    if importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.auto import tqdm
    else:
        from tqdm import tqdm
    return tqdm(total=total, desc=desc, disable=not enabled, mininterval=0.5, leave=True, dynamic_ncols=True)
