"""What every benchmark script shares: where results go, how the machine is described, how a report is written.

The scripts run as ``python benchmarks/<name>.py``, so this module is importable as ``common``.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def device_description(device: torch.device) -> str:
    """'cpu (<CPU model>, N cores)' or 'cuda:0 (<GPU name>)' for a report header."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{device} ({cpu}, {os.cpu_count()} cores)"


def publish(report: str, *, name: str, out: Path | None, quick: bool, device: torch.device, threads: int) -> None:
    """Print the report and write it to ``out``, or by default (not with --quick) to
    ``benchmarks/results/<name>_<device>_<threads>t.md``."""
    print()
    print(report)
    if out is None and not quick:
        out = RESULTS / f"{name}_{device.type}_{threads}t.md"
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report)
        print(f"written: {out}")
