"""Shared helpers for the benchmark scripts (not a test module; not collected by pytest).

Timing: warm-up calls, then ``repeat`` timed calls with ``torch.cuda.synchronize`` around each one
on CUDA; p50/p99 by linear interpolation. Memory: peak resident set size from ``/proc/self/status``
(``VmHWM``), resettable through ``/proc/self/clear_refs`` on Linux; ``resource`` as a fallback.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "DTYPES",
    "add_common_args",
    "emit",
    "flops_summary",
    "fmt_bytes",
    "machine_info",
    "peak_rss_bytes",
    "percentiles",
    "reset_peak_rss",
    "rss_bytes",
    "setup",
    "sync",
    "time_calls",
    "timed",
]

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def add_common_args(parser: argparse.ArgumentParser, *, dtype: str = "float32") -> argparse.ArgumentParser:
    """``--device``, ``--dtype``, ``--threads``, ``--peak-tflops``, ``--json``."""
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default=dtype, help=f"default {dtype}")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="peak of the device in TFLOP/s, to report achieved/peak")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    return parser


def setup(args: argparse.Namespace) -> tuple[torch.device, torch.dtype]:
    """Apply ``--threads``; return the device and dtype chosen on the command line."""
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda requested but CUDA is not available")
    return device, DTYPES[args.dtype]


def sync(device: torch.device | str) -> None:
    """Wait for queued kernels on CUDA (no-op on CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device | str) -> tuple[float, Any]:
    """Run ``fn`` once; return (seconds, result), synchronising the device before and after."""
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - start, out


def time_calls(fn: Callable[[], Any], *, device: torch.device | str, warmup: int, repeat: int) -> list[float]:
    """Seconds of ``repeat`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    return [timed(fn, device)[0] for _ in range(repeat)]


def _quantile(sorted_values: list[float], q: float) -> float:
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def percentiles(times: list[float]) -> dict[str, float]:
    """p50, p99, mean, min, max of a list of durations (seconds), and how many there were."""
    values = sorted(times)
    return {
        "n": len(values),
        "p50": _quantile(values, 0.50),
        "p99": _quantile(values, 0.99),
        "mean": statistics.fmean(values),
        "min": values[0],
        "max": values[-1],
    }


def _proc_status_kib(key: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_bytes() -> int | None:
    """Current resident set size (VmRSS), or None off Linux."""
    kib = _proc_status_kib("VmRSS")
    return None if kib is None else kib * 1024


def peak_rss_bytes() -> int:
    """Peak resident set size since start or the last :func:`reset_peak_rss` (VmHWM)."""
    kib = _proc_status_kib("VmHWM")
    if kib is not None:
        return kib * 1024
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform == "darwin" else maxrss * 1024


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux ``clear_refs`` value 5); False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def flops_summary(flops: float, seconds: float, peak_tflops: float | None) -> dict[str, float | None]:
    """Achieved FLOP/s for a nominal FLOP count, and its fraction of ``peak_tflops`` if given."""
    rate = flops / seconds if seconds > 0 else float("nan")
    return {
        "nominal_flops": flops,
        "achieved_tflops": rate / 1e12,
        "fraction_of_peak": None if peak_tflops is None else rate / (peak_tflops * 1e12),
    }


def machine_info(device: torch.device | str) -> dict[str, Any]:
    """What the figures were measured on."""
    device = torch.device(device)
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
    }
    try:
        info["loadavg_1min"] = os.getloadavg()[0]
    except OSError:
        pass
    if device.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(device)
    return info


def emit(results: dict[str, Any], path: Path | None) -> None:
    """Write ``results`` as JSON to ``path`` if given."""
    if path is not None:
        path.write_text(json.dumps(results, indent=2, sort_keys=True, default=str) + "\n")
        print(f"wrote {path}")


def fmt_bytes(n: float | None) -> str:
    """Human-readable byte count (binary units)."""
    if n is None:
        return "n/a"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GiB"
