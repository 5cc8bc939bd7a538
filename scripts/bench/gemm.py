"""Float32 CPU products: ``torch.mm`` (MKL) vs oneDNN (``nlp_lib.cells.gemm``), side by side.

The shapes the seq2seq model runs: the output layer's slices in training (960 rows x 256 by
256 x 1024, forward and both gradient forms), a beam step's (320 x 256 by 256 x 3072), the decoder
cell's (64 x 512 by 512 x 1024) and the LSTM recurrence (64 x 256 by 256 x 1024). Alternating
``--rounds``, medians; GFLOP/s and oneDNN's ratio to torch per shape; ``--json`` prints one JSON
object on the last line. Run it alone on the machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import cpu_name, print_json, print_table  # noqa: E402

from nlp_lib.cells import gemm  # noqa: E402

# name, rows N, inner K, columns M, form: "nt" x @ w.T, "nn" x @ w, "tn" x.T @ w
SHAPES = [
    ("loss slice forward", 960, 256, 1024, "nt"),
    ("loss slice d hidden", 960, 1024, 256, "nn"),
    ("loss slice d weight", 1024, 960, 256, "tn"),
    ("beam step slice", 320, 256, 3072, "nt"),
    ("decoder cell input", 64, 512, 1024, "nt"),
    ("LSTM recurrence", 64, 256, 1024, "nt"),
]


def operands(n: int, k: int, m: int, form: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, w)`` laid out as the library holds them, so that ``linear(x, w)`` is the ``[n, m]`` product."""
    if form == "nt":
        return torch.randn(n, k), torch.randn(m, k)
    if form == "nn":
        return torch.randn(n, k), torch.randn(k, m).T  # the weight slice, used untransposed
    return torch.randn(k, n).T, torch.randn(k, m).T  # the probabilities transposed, the hidden states


def per_call(backend: str, x: torch.Tensor, w: torch.Tensor, repeats: int) -> float:
    gemm.set_cpu_backend(backend)
    gemm.linear(x, w)
    start = time.perf_counter()
    for _ in range(repeats):
        gemm.linear(x, w)
    return (time.perf_counter() - start) / repeats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    chosen = gemm.cpu_backend()
    rows, out = [], []
    with torch.inference_mode():
        for name, n, k, m, form in SHAPES:
            x, w = operands(n, k, m, form)
            times: dict[str, list[float]] = {"torch": [], "onednn": []}
            for _ in range(a.rounds):
                for backend in times:
                    times[backend].append(per_call(backend, x, w, a.repeats))
            flops = 2 * n * k * m
            rate = {b: flops / statistics.median(t) / 1e9 for b, t in times.items()}
            ratio = rate["onednn"] / rate["torch"]
            rows.append([name, f"{n}x{k} . {k}x{m}", f"{rate['torch']:.0f}", f"{rate['onednn']:.0f}", f"{ratio:.2f}x"])
            out.append({"shape": name, "n": n, "k": k, "m": m, "torch_gflops": round(rate["torch"], 1),
                        "onednn_gflops": round(rate["onednn"], 1), "ratio": round(ratio, 3)})  # fmt: skip
    gemm.set_cpu_backend("auto")
    print(f"CPU: {cpu_name()}, {a.threads} threads; backend chosen by default here: {chosen}")
    print_table(["product", "shape", "torch GFLOP/s", "oneDNN GFLOP/s", "ratio"], rows)
    if a.json:
        print_json({"benchmark": "gemm", "cpu": cpu_name(), "threads": a.threads, "default_backend": chosen,
                    "shapes": out})  # fmt: skip


if __name__ == "__main__":
    main()
