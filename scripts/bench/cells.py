"""Training throughput of recurrent cells run by nlp_lib's SequenceRunner vs nn.LSTM vs a naive loop.

One training step is forward + backward of a loss over every output (batch ``--batch`` sequences of
``--seq-len`` steps, ``--input-size`` inputs, ``--hidden`` hidden units), for:

* ``nn_lstm``:   ``torch.nn.LSTM`` (PyTorch's fused kernel), the reference;
* ``lstm``:      ``nlp_lib.cells.LSTMCell`` through ``SequenceRunner`` (input projections hoisted,
                 Python time loop, masking on; ``fused=False``: the library's own loop);
* ``layernorm``: ``nlp_lib.cells.LayerNormLSTMCell`` through ``SequenceRunner``;
* ``mgu``:       ``nlp_lib.cells.MinimalGatedCell`` (a cell nn.LSTM cannot express);
* ``naive``:     the usual hand-written loop: ``nn.LSTMCell`` called on each step's raw input;
* ``lstm_fused``: ``LSTMCell`` through ``SequenceRunner(fused=True)`` (dispatches to the fused kernel);
* with ``--compile``: ``lstm_compiled``, the runner's step through ``torch.compile``, measured after
  the others (once torch.compile has run in a process, eager code there runs measurably slower).

Methods are interleaved over ``--repeats`` repetitions (order rotated); medians are reported.
Throughput is tokens/s (sequences x steps per second). ``--json`` prints one JSON object last.

    python scripts/bench/cells.py --json
"""

from __future__ import annotations

import argparse
import sys
from functools import partial

import torch
from _common import cpu_name, median, print_json, print_table, timed  # this script's folder is on sys.path
from torch import nn

from nlp_lib.cells import LayerNormLSTMCell, LSTMCell, MinimalGatedCell
from nlp_lib.modules import SequenceRunner


class NaiveLoop(nn.Module):
    """What one writes without a library: nn.LSTMCell on each step's raw input."""

    def __init__(self, input_size: int, hidden: int) -> None:
        super().__init__()
        self.cell = nn.LSTMCell(input_size, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.new_zeros(x.shape[0], self.cell.hidden_size)
        c = torch.zeros_like(h)
        outs = []
        for t in range(x.shape[1]):
            h, c = self.cell(x[:, t], (h, c))
            outs.append(h)
        return torch.stack(outs, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seq-len", type=int, default=50)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--input-size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--compile", action="store_true", help="also measure the runner with a compiled step")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        sys.exit("error: --device cuda, but this torch has no usable CUDA device")
    torch.manual_seed(0)
    b, t, i, h = args.batch, args.seq_len, args.input_size, args.hidden

    def runner(cell, **kw) -> nn.Module:
        return SequenceRunner(cell=cell, input_size=i, hidden_size=h, **kw).to(dev)

    nn_lstm = nn.LSTM(i, h, batch_first=True).to(dev)
    models: dict[str, nn.Module] = {
        "nn_lstm": nn_lstm,
        "lstm": runner(LSTMCell),
        "layernorm": runner(LayerNormLSTMCell),
        "mgu": runner(MinimalGatedCell),
        "naive": NaiveLoop(i, h).to(dev),
        "lstm_fused": runner(LSTMCell, fused=True),
    }
    lengths = torch.full((b,), t, dtype=torch.long, device=dev)

    def step(name: str) -> None:
        m = models[name]
        x = torch.randn(b, t, i, device=dev, requires_grad=True)
        if isinstance(m, SequenceRunner):
            out = m(x, lengths).outputs
        elif isinstance(m, nn.LSTM):
            out = m(x)[0]
        else:
            out = m(x)
        m.zero_grad(set_to_none=True)
        out.pow(2).mean().backward()

    def measure(names: list[str]) -> None:
        for name in names:
            for _ in range(args.warmup):
                step(name)
        for r in range(args.repeats):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                total = sum(timed(partial(step, name), dev)[0] for _ in range(args.steps))
                times.setdefault(name, []).append(total / args.steps)

    times: dict[str, list[float]] = {}
    names = list(models)
    measure(names)
    if args.compile:  # after the eager methods: once torch.compile has run, eager code runs slower
        models["lstm_compiled"] = runner(LSTMCell, compile=True)
        measure(["lstm_compiled"])
        names.append("lstm_compiled")
    rate = {n: b * t / median(v) for n, v in times.items()}
    res = {
        "nn_lstm_tokens_per_s": rate["nn_lstm"],
        "lstm_tokens_per_s": rate["lstm"],
        "layernorm_tokens_per_s": rate["layernorm"],
        "mgu_tokens_per_s": rate["mgu"],
        "naive_loop_tokens_per_s": rate["naive"],
        "lstm_fused_tokens_per_s": rate["lstm_fused"],
        "ratio_lstm_vs_nn_lstm": rate["lstm"] / rate["nn_lstm"],
        "ratio_layernorm_vs_nn_lstm": rate["layernorm"] / rate["nn_lstm"],
        "ratio_lstm_vs_naive_loop": rate["lstm"] / rate["naive"],
        "ratio_layernorm_vs_naive_loop": rate["layernorm"] / rate["naive"],
        "ratio_fused_vs_nn_lstm": rate["lstm_fused"] / rate["nn_lstm"],
        "batch": b,
        "seq_len": t,
        "hidden": h,
        "input_size": i,
        "steps": args.steps,
        "repeats": args.repeats,
        "torch_version": torch.__version__,
        "cpu": cpu_name(),
        "num_threads": torch.get_num_threads(),
        "device": str(dev),
    }
    if args.compile:
        res["lstm_compiled_tokens_per_s"] = rate["lstm_compiled"]
        res["ratio_compiled_vs_nn_lstm"] = rate["lstm_compiled"] / rate["nn_lstm"]
    if args.json:
        print_json(res)
        return
    print(
        f"training throughput (forward + backward), batch {b}, length {t}, input {i}, hidden {h}, {dev}, "
        f"threads {torch.get_num_threads()}, torch {torch.__version__}, {cpu_name()}; medians of {args.repeats} x {args.steps}"
    )
    print_table(
        ["method", "step ms", "tokens/s", "this / nn.LSTM"],
        [[n, 1e3 * median(times[n]), rate[n], f"{rate[n] / rate['nn_lstm']:.2f}"] for n in names],
    )


if __name__ == "__main__":
    main()
