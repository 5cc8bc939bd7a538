"""The seq2seq training curve before and after issue 18's changes, for one seed: the same losses?

Trains issue 18's Multi30K model (word vocabularies from the tokenised files, bidirectional LSTM
encoder 2 x 128, LSTM decoder 256, general attention, input feeding, dropout 0.3, label smoothing
0.1, batches of 64, Adam 1e-3) twice from the same seed, on the same batches with the same dropout
masks:

* ``before``: the logits ``[B, T, V]`` from ``Seq2Seq.forward`` through ``F.cross_entropy``, and
  ``torch.optim.Adam`` (for-loop), as training ran before (the per-step decoder equals
  ``forward`` to 1e-6: ``tests/models/test_seq2seq_decoder.py``);
* ``after``: ``token_loss`` (the output layer and the loss by vocabulary slices) and
  ``Adam(fused=True)``, as ``nlp-lib train`` runs now.

Prints both curves' largest absolute and relative difference per step, and the seconds of each.
``--json`` prints one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import cpu_name, print_json  # noqa: E402

from nlp_lib.cells import LSTMCell  # noqa: E402
from nlp_lib.data.builders import parallel_data  # noqa: E402
from nlp_lib.models import Seq2Seq  # noqa: E402
from nlp_lib.structure.seq2seq import PAD  # noqa: E402
from nlp_lib.tasks.seq2seq import token_loss  # noqa: E402


def train(way: str, batches: list, sizes: dict, seed: int) -> tuple[list[float], float]:
    torch.manual_seed(seed)
    model = Seq2Seq(
        **sizes, cell=LSTMCell, embedding_size=256, hidden_size=256, bidirectional=True,
        attention="general", input_feeding=True, dropout=0.3,
    ).train()  # fmt: skip
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=way == "after")
    losses = []
    torch.manual_seed(seed + 1)  # the dropout masks: the same stream for both
    start = time.perf_counter()
    for b in batches:
        opt.zero_grad()
        if way == "after":
            loss = token_loss(model, b, label_smoothing=0.1)[0]
        else:
            logits = model(b.src, b.src_lengths, b.tgt_in).logits
            loss = F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), b.tgt_out.reshape(-1), ignore_index=PAD, label_smoothing=0.1
            )
        loss.backward()
        opt.step()
        losses.append(float(loss))
    return losses, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "multi30k" / "tok")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    dm = parallel_data(
        path=str(a.data), source="en", target="de", train="train.lc.norm.tok", val="val.lc.norm.tok",
        tokenizer="word", batch_size=64, cache=False, seed=a.seed,
    )  # fmt: skip
    dm.prepare_data()
    dm.setup("fit")
    it = iter(dm.train_dataloader())
    batches = [next(it) for _ in range(a.steps)]
    before, t_before = train("before", batches, dm.model_sizes(), a.seed)
    after, t_after = train("after", batches, dm.model_sizes(), a.seed)
    diffs = [abs(x - y) for x, y in zip(before, after, strict=True)]
    result = {
        "benchmark": "seq2seq_curve",
        "cpu": cpu_name(),
        "steps": a.steps,
        "first_loss": [round(before[0], 6), round(after[0], 6)],
        "last_loss": [round(before[-1], 6), round(after[-1], 6)],
        "max_abs_diff": max(diffs),
        "max_rel_diff": max(d / abs(x) for d, x in zip(diffs, before, strict=True)),
        "max_abs_diff_first_10": max(diffs[:10]),
        "seconds_before": round(t_before, 2),
        "seconds_after": round(t_after, 2),
        "speedup": round(t_before / t_after, 3),
    }
    for k, v in result.items():
        print(f"{k}: {v}")
    if a.json:
        print_json(result)


if __name__ == "__main__":
    main()
