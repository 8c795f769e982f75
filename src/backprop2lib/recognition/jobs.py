"""Chapter 5's stored-model jobs (``backprop2lib.store``): one cell of the few-shot curve per job.

``train(spec, checkpoint, progress, device)`` runs :func:`.few_shot.code_draw` for the draw its
configuration names and returns the class models' tensors (every seed, rows seed-major) and a record
of what was measured: each seed's test accuracy, each baseline's (plain and on moved copies), the
meta-training curve and the seconds. A cell takes minutes, so there is no checkpoint to resume from:
an interrupted job starts the cell again.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .baselines import BASELINES
from .codes import CodeReconstructor, CodeSettings
from .few_shot import CodeExperiment, code_draw, pool_and_test


def experiment_from_config(entry: dict) -> CodeExperiment:
    """The :class:`CodeExperiment` a configuration's ``experiment`` entry (``dataclasses.asdict`` of one) names."""
    entry = dict(entry)
    rec = dict(entry.pop("reconstructor"))
    rec["hidden"] = tuple(rec["hidden"])
    return CodeExperiment(CodeReconstructor(**rec), CodeSettings(**entry.pop("training")), **entry)


def train(spec, checkpoint: Path | None, progress: bool | None = None,
          device: torch.device | str = "cpu") -> tuple[dict, dict]:
    c = spec.config
    unknown = [name for name in c["baselines"] if name not in BASELINES]
    if unknown:
        raise ValueError(f"baselines: unknown {', '.join(unknown)}; valid: {', '.join(BASELINES)}")
    pool, test = pool_and_test()
    test = test.subset(slice(0, c["test_images"]))
    result = code_draw(experiment_from_config(c["experiment"]), c["n"], c["draw"], c["seeds"],
                       {name: BASELINES[name] for name in c["baselines"]}, pool=pool, test=test, device=device)
    m = result.models
    state = {name: getattr(m, name).detach().cpu() for name in ("w", "mu", "log_sigma", "log_alpha")}
    record = {"code_accuracy": [float(a) for a in result.code], "baselines": result.baselines,
              "meta_loss": [float(f"{loss:.6g}") for _, loss in m.history], "seconds": sum(result.seconds.values()),
              "parts_seconds": result.seconds}
    return state, record
