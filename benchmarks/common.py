"""What every benchmark script shares: where results go, how the machine is described, how a report is written.

The scripts run as ``python benchmarks/<name>.py``, so this module is importable as ``common``.
"""

from __future__ import annotations

import ctypes
import gc
import os
import platform
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


NOISY = 1.5  # slowest timing round over the fastest above this: the row is marked noisy


def fmt_s(s: float) -> str:
    """Seconds as ms below 1 s, else s, to 3 significant digits."""
    return f"{s * 1e3:.3g} ms" if s < 1 else f"{s:.3g} s"


def noisy_note(rounds) -> str:
    """' (**noisy**: ×k spread)' when the slowest round took over NOISY × the fastest, else ''."""
    lo, hi = min(rounds), max(rounds)
    return f" (**noisy**: ×{hi / lo:.1f} spread)" if hi > NOISY * lo else ""


def status_kib(field: str) -> int | None:
    """A field of /proc/self/status in KiB (VmRSS, VmHWM, ...); None where there is no /proc."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def release_free_heap() -> None:
    """Collect garbage and hand freed heap back to the OS (glibc), so RSS then counts live memory."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


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
