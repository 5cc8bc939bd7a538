"""Tiny helpers shared by the benchmark scripts: device-synchronised timing and result printing."""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import torch

T = TypeVar("T")


def sync(device: torch.device) -> None:
    """Wait for queued device work (a no-op on the CPU), so wall-clock times are real."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], T], device: torch.device) -> tuple[float, T]:
    """Seconds ``fn()`` takes (the device synchronised before and after), and what it returned."""
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t0, out


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs))


def print_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A plain left-aligned text table."""
    cells = [[str(h) for h in header]] + [[f"{c:,.1f}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for k, r in enumerate(cells):
        print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))))
        if k == 0:
            print("  ".join("-" * w for w in widths))


def print_json(result: dict) -> None:
    """One JSON object on one line (the last line of the output, for machines to read)."""
    print(json.dumps(result, sort_keys=False), flush=True)


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux) with its family and model numbers (a virtual
    machine may name every AMD EPYC generation alike), to tell results from different machines apart."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break  # the first processor's block is enough
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    if "model name" in fields:
        if "cpu family" in fields and "model" in fields:
            return f"{fields['model name']} (family {fields['cpu family']}, model {fields['model']})"
        return fields["model name"]
    return platform.processor() or platform.machine()
