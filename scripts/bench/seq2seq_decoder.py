"""Seq2seq training step: the loss by vocabulary slices vs the output layer once vs once per step, side by side.

One process, one model, alternating: forward + backward of a batch with teacher forcing and label
smoothing 0.1, (1) through ``Seq2Seq.decode_hidden`` and ``linear_cross_entropy`` (the output layer
and the loss by vocabulary slices, as ``token_loss`` trains), (2) through ``Seq2Seq.forward`` (the
recurrence per step, the output layer once over ``[B, T, H]``, then ``F.cross_entropy``) and (3)
through ``Seq2Seq.step`` at every position (the output layer inside the time loop, as before issue 18).
Defaults are issue 18's Multi30K model (vocabularies 10,214 / 18,726, embeddings and hidden 256,
bidirectional LSTM encoder, general attention, dropout 0.3) at 64 x 15 target tokens.
``--json`` prints one JSON object on the last line; medians over ``--repeats``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import cpu_name  # noqa: E402

from nlp_lib.cells import LSTMCell  # noqa: E402
from nlp_lib.models import Seq2Seq  # noqa: E402
from nlp_lib.models.seq2seq import Seq2SeqOutput  # noqa: E402
from nlp_lib.modules.linear_cross_entropy import linear_cross_entropy  # noqa: E402


def step_by_step(model: Seq2Seq, src, src_lengths, tgt_in) -> Seq2SeqOutput:
    enc, state = model.encode(src, src_lengths)
    logits, attn = [], []
    for t in range(tgt_in.shape[1]):
        out, state, w = model.step(tgt_in[:, t], state, enc)
        logits.append(out)
        attn.append(w)
    return Seq2SeqOutput(torch.stack(logits, 1), torch.stack(attn, 1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src-vocab", type=int, default=10214)
    ap.add_argument("--tgt-vocab", type=int, default=18726)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--src-len", type=int, default=14)
    ap.add_argument("--tgt-len", type=int, default=15)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(a.threads)
    model = Seq2Seq(
        src_vocab_size=a.src_vocab,
        tgt_vocab_size=a.tgt_vocab,
        cell=LSTMCell,
        embedding_size=a.hidden,
        hidden_size=a.hidden,
        bidirectional=True,
        dropout=0.3,
        attention="general",
    ).train()
    src = torch.randint(4, a.src_vocab, (a.batch, a.src_len))
    src_lengths = torch.full((a.batch,), a.src_len)
    tgt = torch.randint(4, a.tgt_vocab, (a.batch, a.tgt_len))
    tgt[:, 0] = 2

    def logits_loss(out: Seq2SeqOutput) -> torch.Tensor:
        return F.cross_entropy(out.logits.reshape(-1, a.tgt_vocab), tgt.reshape(-1), label_smoothing=0.1)

    def sliced_loss() -> torch.Tensor:
        hidden, _ = model.decode_hidden(src, src_lengths, tgt)
        return linear_cross_entropy(hidden, *model.output_layer(), tgt, label_smoothing=0.1).loss

    def run(loss_fn) -> float:
        start = time.perf_counter()
        model.zero_grad()
        loss_fn().backward()
        return time.perf_counter() - start

    ways = {
        "sliced_loss": sliced_loss,
        "output_once": lambda: logits_loss(model(src, src_lengths, tgt)),
        "step_by_step": lambda: logits_loss(step_by_step(model, src, src_lengths, tgt)),
    }
    for fn in ways.values():
        run(fn)  # warm-up
    times: dict[str, list[float]] = {k: [] for k in ways}
    for _ in range(a.repeats):
        for k, fn in ways.items():
            times[k].append(run(fn))
    med = {k: statistics.median(v) for k, v in times.items()}
    tokens = a.batch * a.tgt_len
    result = {
        "sliced_loss_ms": round(med["sliced_loss"] * 1e3, 1),
        "output_once_ms": round(med["output_once"] * 1e3, 1),
        "step_by_step_ms": round(med["step_by_step"] * 1e3, 1),
        "speedup": round(med["step_by_step"] / med["output_once"], 3),
        "sliced_vs_output_once": round(med["output_once"] / med["sliced_loss"], 3),
        "sliced_vs_step_by_step": round(med["step_by_step"] / med["sliced_loss"], 3),
        "sliced_loss_tgt_tokens_per_s": round(tokens / med["sliced_loss"]),
        "output_once_tgt_tokens_per_s": round(tokens / med["output_once"]),
        "step_by_step_tgt_tokens_per_s": round(tokens / med["step_by_step"]),
        "config": vars(a) | {"json": None},
        "cpu": cpu_name(),
        "torch_version": torch.__version__,
    }
    print(json.dumps(result) if a.json else result)


if __name__ == "__main__":
    main()
