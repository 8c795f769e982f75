"""The store of trained models: meta-training too long for a chapter's ``paper`` run, done once,
stamped with the code it came from and committed with the book.

* ``artifacts`` - what a stored model is (:class:`ModelSpec`, :class:`StoredModel`), its stamp,
  saving, loading and the checks that refuse a stale, mismatched or corrupt file
* ``registry``  - the chapters' trained models by profile, :func:`obtain` (load, or train and save)
* ``python -m backprop2lib.store list | stale | train``: the command line; the notebook runner's
  ``--stale`` and ``--list-stale`` include stored models too
"""

from .artifacts import (ModelSpec, StoredModel, StoreError, code_modules, compute_stamp, default_root, load,
                        model_paths, save, status)
from .registry import PROVIDERS, obtain, registered_models, stale_models

__all__ = [
    "ModelSpec", "StoredModel", "StoreError", "code_modules", "compute_stamp", "default_root", "load",
    "model_paths", "save", "status", "PROVIDERS", "obtain", "registered_models", "stale_models",
]
