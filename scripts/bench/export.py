"""Exported models in onnxruntime vs the same models in PyTorch, side by side in one run.

For each model kind, one batch timed alternately in PyTorch (eager, ``no_grad``, eval) and in
onnxruntime (CPU provider), median over ``--reps`` repetitions, and the largest difference of the
outputs on that batch:

* ``sequence``: bidirectional LSTM classifier (embedding 128, hidden 256), ``--batch`` texts of 10-50
  tokens padded to ``max_length`` 64;
* ``tree``: N-ary Tree-LSTM classifier at the SST recipe's sizes (300 -> 150), ``--batch`` random
  binary trees of 5-40 leaves (SST-like); onnxruntime at ``max_depth`` 64 (the default: every tree
  up to 63 levels; the steps past the batch's height run on empty levels) and at the batch's own
  height + 1;
* ``seq2seq``: the SCAN recipe's model shape (biLSTM encoder, LSTM decoder 256, general attention),
  greedy decoding of ``--batch`` sources for 30 steps: the library's ``greedy`` vs
  ``OnnxSeq2Seq.greedy`` (the encoder and step graphs driven from Python).

Ratios are PyTorch time / onnxruntime time (above 1: onnxruntime is faster). ``--json`` prints one
JSON object on the last line.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import median, print_json, print_table  # noqa: E402

from nlp_lib.cells import LSTMCell, NaryTreeLSTMCell  # noqa: E402
from nlp_lib.export import OnnxSeq2Seq, export_onnx, tree_inputs  # noqa: E402
from nlp_lib.models import Seq2Seq, SequenceClassifier, TreeClassifier  # noqa: E402
from nlp_lib.models.decoding import greedy  # noqa: E402
from nlp_lib.structure import TreeBatch  # noqa: E402
from nlp_lib.structure.random_trees import random_binary_tree  # noqa: E402
from nlp_lib.structure.sequence import SequenceBatch  # noqa: E402


def side_by_side(torch_fn, ort_fn, reps: int) -> tuple[float, float]:  # noqa: ANN001
    """Median seconds of each, timed alternately after one warm-up call each."""
    torch_fn(), ort_fn()
    t_torch, t_ort = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        torch_fn()
        t_torch.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ort_fn()
        t_ort.append(time.perf_counter() - t0)
    return median(t_torch), median(t_ort)


def session(path: Path):  # noqa: ANN201
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def bench_sequence(work: Path, batch: int, reps: int, rng: random.Random) -> dict:
    torch.manual_seed(0)
    model = SequenceClassifier(
        vocab_size=8000, num_classes=5, cell=LSTMCell, embedding_size=128, hidden_size=256, bidirectional=True
    ).eval()
    export_onnx(model, work / "seq", max_length=64)
    ids = [[rng.randrange(4, 8000) for _ in range(rng.randint(10, 50))] for _ in range(batch)]
    b = SequenceBatch.from_lists(ids)
    tokens = np.zeros((batch, 64), dtype=np.int64)
    tokens[:, : b.tokens.shape[1]] = b.tokens.numpy()
    feeds = {"tokens": tokens, "lengths": b.lengths.numpy()}
    s = session(work / "seq" / "model.onnx")
    with torch.no_grad():
        expected = model(b).logits
        t_torch, t_ort = side_by_side(lambda: model(b), lambda: s.run(None, feeds), reps)
    diff = float(np.abs(s.run(None, feeds)[0] - expected.numpy()).max())
    return {"torch_ms": t_torch * 1e3, "ort_ms": t_ort * 1e3, "max_abs_diff": diff}


def bench_tree(work: Path, batch: int, reps: int, rng: random.Random) -> dict:
    torch.manual_seed(0)
    model = TreeClassifier(vocab_size=20000, num_classes=5, cell=NaryTreeLSTMCell(300, 150)).eval()
    trees = [random_binary_tree(rng.randint(5, 40), rng, vocab_size=20000) for _ in range(batch)]
    parents = [t.parent for t in trees]
    tokens = [[int(w[1:]) if w else -1 for w in t.words] for t in trees]
    tb = TreeBatch.from_arrays(parents, tokens)
    feeds = tree_inputs(parents, tokens)
    height = int(feeds["height"].max())
    out = {"batch_height": height}
    with torch.no_grad():
        expected = model(tb).logits
    for name, depth in (("depth64", 64), ("tight", height + 1)):
        export_onnx(model, work / f"tree_{name}", max_depth=depth, check=False)
        s = session(work / f"tree_{name}" / "model.onnx")
        used = {k: feeds[k] for k in (i.name for i in s.get_inputs())}  # onnx.json's inputs of this graph
        with torch.no_grad():
            t_torch, t_ort = side_by_side(lambda: model(tb), lambda s=s, used=used: s.run(None, used), reps)
        out[f"ort_{name}_ms"] = t_ort * 1e3
        out["torch_ms"] = t_torch * 1e3
        out[f"max_abs_diff_{name}"] = float(np.abs(s.run(None, used)[0] - expected.numpy()).max())
    return out


def bench_seq2seq(work: Path, batch: int, reps: int, rng: random.Random) -> dict:
    torch.manual_seed(0)
    model = Seq2Seq(
        src_vocab_size=20, tgt_vocab_size=12, cell=LSTMCell, embedding_size=64, hidden_size=256, dropout=0.0
    ).eval()
    export_onnx(model, work / "s2s", max_length=16)
    runtime = OnnxSeq2Seq(work / "s2s")
    sources = [[rng.randrange(4, 20) for _ in range(rng.randint(1, 9))] for _ in range(batch)]
    b = SequenceBatch.from_lists(sources)
    steps = 30
    with torch.no_grad():
        t_torch, t_ort = side_by_side(
            lambda: greedy(model, b.tokens, b.lengths, max_length=steps),
            lambda: runtime.greedy(sources, max_steps=steps),
            reps,
        )
    same = runtime.greedy(sources, max_steps=steps) == greedy(model, b.tokens, b.lengths, max_length=steps)
    return {"torch_ms": t_torch * 1e3, "ort_ms": t_ort * 1e3, "identical_outputs": bool(same)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: PyTorch's default)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        seq = bench_sequence(work, args.batch, args.reps, rng)
        tree = bench_tree(work, args.batch, args.reps, rng)
        s2s = bench_seq2seq(work, args.batch, args.reps, rng)
    rows = [
        ["sequence (biLSTM 256)", seq["torch_ms"], seq["ort_ms"], seq["torch_ms"] / seq["ort_ms"]],
        ["tree, max_depth 64", tree["torch_ms"], tree["ort_depth64_ms"], tree["torch_ms"] / tree["ort_depth64_ms"]],
        [
            f"tree, max_depth {tree['batch_height'] + 1} (tight)",
            tree["torch_ms"],
            tree["ort_tight_ms"],
            tree["torch_ms"] / tree["ort_tight_ms"],
        ],
        ["seq2seq greedy, 30 steps", s2s["torch_ms"], s2s["ort_ms"], s2s["torch_ms"] / s2s["ort_ms"]],
    ]
    print(f"batch {args.batch}, median of {args.reps}; ratio = PyTorch / onnxruntime")
    print_table(["model", "PyTorch ms", "onnxruntime ms", "ratio"], rows)
    result = {
        "batch": args.batch,
        "sequence_torch_over_ort": round(seq["torch_ms"] / seq["ort_ms"], 3),
        "tree_depth64_torch_over_ort": round(tree["torch_ms"] / tree["ort_depth64_ms"], 3),
        "tree_tight_torch_over_ort": round(tree["torch_ms"] / tree["ort_tight_ms"], 3),
        "seq2seq_greedy_torch_over_ort": round(s2s["torch_ms"] / s2s["ort_ms"], 3),
        "max_abs_diff": max(seq["max_abs_diff"], tree["max_abs_diff_depth64"], tree["max_abs_diff_tight"]),
        "seq2seq_identical_outputs": s2s["identical_outputs"],
        "tree_batch_height": tree["batch_height"],
    }
    if args.json:
        print_json(result)


if __name__ == "__main__":
    main()
