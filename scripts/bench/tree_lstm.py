"""Training throughput: nlp_lib's level-scheduled binary Tree-LSTM vs a per-node recursive one vs nn.LSTM.

One training step is forward + backward + one plain SGD step for all three methods, each with an
``nn.Embedding(vocab, --input-size)`` and a linear classifier into 5 classes, cross-entropy loss:

(a) level:     ``TreeClassifier`` with ``NaryTreeLSTMCell(arity=2)`` on ``--batch`` trees, loss on
               the root labels. Building the level schedule (``TreeBatch.from_arrays``, what a
               DataLoader worker does; node heights cached per tree as a dataset does) is INSIDE
               the step time, and its share is reported as ``schedule_overhead_share``.
(b) recursive: the same binary Tree-LSTM math (Tai et al. 2015, eqs. 9-14) written the usual way and
               independently of nlp_lib: a Python recursion over one tree at a time, one node per
               cell call; the trees' losses are summed, one backward and one SGD step per
               ``--recursive-trees`` trees (it is slow, so it sees fewer trees; converted to nodes/s).
               (One backward per tree would be slower still: a dense embedding gradient per tree.)
(c) lstm:      ``torch.nn.LSTM(input, hidden)`` over ``--batch`` sequences of length
               round(mean nodes per tree), classifier on the last hidden state.
(d) compiled:  with ``--compile``, (a) with its cell run through ``torch.compile`` (dynamic sizes);
               its warm-up compiles the graphs, and ``recompiles`` counts graphs compiled while
               measuring (new level sizes must not recompile: expected 0). It is measured after
               the eager methods, not interleaved: once torch.compile has run in a process,
               eager code there runs measurably slower.

The level model embeds and projects each distinct word of a batch once (``batch.unique_tokens``)
when dropout is off, as here; the LSTM baseline's tokens are uniform over the vocabulary.

Throughput is nodes/s (time steps/s for the LSTM). The methods are interleaved over ``--repeats``
repetitions (their order rotates) and medians over repetitions are reported. Trees are sampled
(seeded) from the SST train set or from synthetic random binary trees of SST-like sizes.

On a busy or shared machine pass ``--threads 1``: with more intra-op threads than free cores,
every op waits for preempted threads and all three figures collapse (10-30x slower) and scatter.

Run from the repository root (``PYTHONPATH=.`` if nlp_lib is not installed):

    python scripts/bench/tree_lstm.py --data sst --json
    python scripts/bench/tree_lstm.py --data synthetic --steps 3 --repeats 3
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from _common import cpu_name, median, print_json, print_table, timed  # this script's folder is on sys.path
from torch import nn

from nlp_lib.cells.tree_lstm import NaryTreeLSTMCell
from nlp_lib.models.tree_classifier import TreeClassifier
from nlp_lib.structure.brackets import parse_ptb
from nlp_lib.structure.schedule import TreeBatch
from nlp_lib.structure.tree import Tree

REPO = Path(__file__).resolve().parents[2]

NUM_CLASSES = 5
LR = 0.01


@dataclass
class Data:
    trees: list[Tree]  # parent / labels / cached heights, as a dataset holds them
    tokens: list[list[int]]  # token id per node, -1 for internal nodes
    vocab_size: int


def load_sst(path: Path) -> Data:
    if not path.is_file():
        sys.exit(f"error: SST trees not found at {path} (pass --sst-path, or use --data synthetic)")
    trees = [parse_ptb(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    vocab: dict[str, int] = {}
    tokens = [[vocab.setdefault(w, len(vocab)) if w else -1 for w in t.words] for t in trees]
    return Data(trees, tokens, len(vocab))


def random_binary_tree(n: int, rng: random.Random, parent: list[int]) -> int:
    """Append a random binary tree over ``n`` leaves to ``parent`` in post-order; return its root.

    Half the splits peel off one word: SST trees lean right-branching (mean height ~9, SST's 9.8).
    """
    kids = ()
    if n > 1:
        k = 1 if rng.random() < 0.5 else rng.randint(1, n - 1)
        kids = (random_binary_tree(k, rng, parent), random_binary_tree(n - k, rng, parent))
    parent.append(-1)
    for c in kids:
        parent[c] = len(parent) - 1
    return len(parent) - 1


def synthetic(seed: int, num_trees: int = 8544, vocab_size: int = 16000) -> Data:
    """Random binary trees; leaf counts ~ Gamma(mean 19, sd 9.3) clipped to 1..56 (SST: 19.1, 9.3, 2..52)."""
    rng = random.Random(seed)
    trees, tokens = [], []
    for _ in range(num_trees):
        parent: list[int] = []
        random_binary_tree(min(56, max(1, round(rng.gammavariate(4.2, 19.1 / 4.2)))), rng, parent)
        has_kid = {p for p in parent if p >= 0}
        tokens.append([-1 if i in has_kid else rng.randrange(vocab_size) for i in range(len(parent))])
        trees.append(Tree(parent=parent, labels=[rng.randrange(NUM_CLASSES) for _ in parent]))
    return Data(trees, tokens, vocab_size)


class RecursiveTreeLSTM(nn.Module):
    """Binary Tree-LSTM (Tai et al. 2015, eqs. 9-14) the usual way: a recursion, one node per call.

    Leaves: ``i, o, u = W_iou x + b_iou``. Internal nodes (no word): ``U_iou [h_l; h_r] + b_iou`` and
    one forget gate per child, ``[f_l; f_r] = sigmoid(U_f [h_l; h_r] + [b_f; b_f])``.
    """

    def __init__(self, vocab_size: int, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, input_size)
        self.W_iou = nn.Linear(input_size, 3 * hidden_size)
        self.U_iou = nn.Linear(2 * hidden_size, 3 * hidden_size, bias=False)
        self.U_f = nn.Linear(2 * hidden_size, 2 * hidden_size, bias=False)
        self.b_f = nn.Parameter(torch.zeros(hidden_size))
        self.classifier = nn.Linear(hidden_size, NUM_CLASSES)

    def node(self, j: int, kids: list[list[int]], x: dict[int, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        if not kids[j]:
            i, o, u = self.W_iou(x[j]).chunk(3, dim=1)
            c = torch.sigmoid(i) * torch.tanh(u)
        else:
            (hl, cl), (hr, cr) = (self.node(k, kids, x) for k in kids[j])
            hlr = torch.cat([hl, hr], dim=1)
            i, o, u = (self.U_iou(hlr) + self.W_iou.bias).chunk(3, dim=1)
            fl, fr = torch.sigmoid(self.U_f(hlr) + self.b_f.repeat(2)).chunk(2, dim=1)
            c = torch.sigmoid(i) * torch.tanh(u) + fl * cl + fr * cr
        return torch.sigmoid(o) * torch.tanh(c), c

    def forward(self, kids: list[list[int]], leaves: list[int], leaf_tokens: torch.Tensor) -> torch.Tensor:
        emb = self.embedding(leaf_tokens)  # [leaves, input]: the sentence, embedded once
        x = {j: emb[r : r + 1] for r, j in enumerate(leaves)}
        h, _ = self.node(len(kids) - 1, kids, x)  # the root is the last node
        return self.classifier(h)  # [1, classes]


class SeqLSTM(nn.Module):
    def __init__(self, vocab_size: int, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, input_size)
        self.lstm = nn.LSTM(input_size, hidden_size, batch_first=True)
        self.classifier = nn.Linear(hidden_size, NUM_CLASSES)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        _, (h, _) = self.lstm(self.embedding(tokens))
        return self.classifier(h[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", choices=["sst", "synthetic"], default="sst")
    ap.add_argument("--sst-path", type=Path, default=REPO / "../shared/data/sst/trees/train.txt")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--hidden", type=int, default=150)
    ap.add_argument("--input-size", type=int, default=300)
    ap.add_argument("--recursive-trees", type=int, default=32, help="trees per recursive step")
    ap.add_argument("--steps", type=int, default=10, help="measured steps per method per repetition")
    ap.add_argument("--warmup", type=int, default=2, help="unmeasured steps per method first")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    ap.add_argument(
        "--compile",
        action="store_true",
        help="also measure the level model with torch.compile'd cells (method 'compiled'; counts recompiles)",
    )
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        sys.exit("error: --device cuda, but this torch has no usable CUDA device")
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)

    data = load_sst(args.sst_path.resolve()) if args.data == "sst" else synthetic(args.seed)
    trees, tokens = data.trees, data.tokens
    kids = [t.children() for t in trees]
    if any(len(k) not in (0, 2) for ks in kids for k in ks):
        sys.exit("error: this benchmark needs binary trees (every node with 0 or 2 children)")
    for t in trees:
        t.heights  # noqa: B018  (cached, as a dataset would)
    leaves = [t.leaves for t in trees]
    leaf_tok = [torch.tensor([tk[j] for j in lv], device=dev) for tk, lv in zip(tokens, leaves, strict=True)]
    root_label = [t.labels[-1] for t in trees]
    mean_nodes = sum(len(t) for t in trees) / len(trees)
    seq_len = round(mean_nodes)

    level = TreeClassifier(
        vocab_size=data.vocab_size,
        num_classes=NUM_CLASSES,
        cell=NaryTreeLSTMCell(args.input_size, args.hidden, arity=2),
    ).to(dev)
    compiled = None
    if args.compile:
        compiled = TreeClassifier(
            vocab_size=data.vocab_size,
            num_classes=NUM_CLASSES,
            cell=NaryTreeLSTMCell(args.input_size, args.hidden, arity=2),
            compile=True,
        ).to(dev)
    rec = RecursiveTreeLSTM(data.vocab_size, args.input_size, args.hidden).to(dev)
    lstm = SeqLSTM(data.vocab_size, args.input_size, args.hidden).to(dev)
    opts = {m: torch.optim.SGD(m.parameters(), lr=LR) for m in (level, rec, lstm, compiled) if m is not None}

    def level_step(idx: list[int], model: nn.Module = level) -> tuple[int, float]:
        t0 = time.perf_counter()
        batch = TreeBatch.from_arrays(
            [trees[i].parent for i in idx],
            [tokens[i] for i in idx],
            [trees[i].labels for i in idx],
            [trees[i].heights for i in idx],
        )
        sched = time.perf_counter() - t0
        batch = batch.to(dev)
        loss = F.cross_entropy(model(batch).logits, batch.labels[batch.roots])
        opts[model].zero_grad(set_to_none=True)
        loss.backward()
        opts[model].step()
        return batch.num_nodes, sched

    def recursive_step(idx: list[int]) -> tuple[int, float]:
        losses = [  # one tree at a time
            F.cross_entropy(rec(kids[i], leaves[i], leaf_tok[i]), torch.tensor([root_label[i]], device=dev))
            for i in idx
        ]
        opts[rec].zero_grad(set_to_none=True)
        (sum(losses) / len(idx)).backward()  # gradients of all the trees; one dense embedding grad
        opts[rec].step()
        return sum(len(trees[i]) for i in idx), 0.0

    def lstm_step(idx: list[int]) -> tuple[int, float]:
        toks = torch.randint(data.vocab_size, (len(idx), seq_len), device=dev)
        target = torch.tensor([root_label[i] for i in idx], device=dev)
        loss = F.cross_entropy(lstm(toks), target)
        opts[lstm].zero_grad(set_to_none=True)
        loss.backward()
        opts[lstm].step()
        return toks.numel(), 0.0

    methods = {
        "level": (level_step, args.batch),
        "recursive": (recursive_step, args.recursive_trees),
        "lstm": (lstm_step, args.batch),
    }
    sample = lambda size: rng.sample(range(len(trees)), size)  # noqa: E731

    def measure(names: list[str], runs: dict[str, list[tuple[float, int, float]]]) -> None:
        for r in range(args.repeats):
            for name in names[r % len(names) :] + names[: r % len(names)]:  # rotate the order across repetitions
                step, size = methods[name]
                total, nodes, sched = 0.0, 0, 0.0
                for idx in [sample(size) for _ in range(args.steps)]:
                    sec, (n, s) = timed(partial(step, idx), dev)
                    total, nodes, sched = total + sec, nodes + n, sched + s
                runs[name].append((total, nodes, sched))

    # Eager methods first, interleaved. The compiled model runs after them: once torch.compile has
    # run in a process, eager code in it is measurably slower, which would skew the eager ratios.
    for step, size in methods.values():
        for _ in range(args.warmup):
            step(sample(size))
    runs: dict[str, list[tuple[float, int, float]]] = {m: [] for m in methods}  # (seconds, nodes, sched s)
    measure(list(methods), runs)
    compile_s, graphs_before = 0.0, _compiled_graphs()
    if compiled is not None:
        methods["compiled"] = (partial(level_step, model=compiled), args.batch)
        t0 = time.perf_counter()
        for _ in range(args.warmup * 4):  # also compiles its graphs (a few, whatever the level sizes)
            methods["compiled"][0](sample(args.batch))
        compile_s = time.perf_counter() - t0
        graphs_before = _compiled_graphs()
        runs["compiled"] = []
        measure(["compiled"], runs)

    recompiles = _compiled_graphs() - graphs_before  # graphs compiled while measuring: new sizes that recompiled
    rate = {m: median([n / t for t, n, _ in runs[m]]) for m in runs}
    step_ms = {m: median([1e3 * t / args.steps for t, _, _ in runs[m]]) for m in runs}
    res = {
        "level_nodes_per_s": rate["level"],
        "recursive_nodes_per_s": rate["recursive"],
        "lstm_steps_per_s": rate["lstm"],
        "ratio_vs_recursive": rate["level"] / rate["recursive"],
        "ratio_vs_lstm": rate["level"] / rate["lstm"],
        "trees_per_s": median([args.steps * args.batch / t for t, _, _ in runs["level"]]),
        "recompiles": recompiles if compiled is not None else None,
        "schedule_overhead_share": median([s / t for t, _, s in runs["level"]]),
        "level_step_ms": step_ms["level"],
        "recursive_step_ms": step_ms["recursive"],
        "lstm_step_ms": step_ms["lstm"],
        "data": args.data,
        "num_trees_in_data": len(trees),
        "vocab_size": data.vocab_size,
        "batch": args.batch,
        "hidden": args.hidden,
        "input_size": args.input_size,
        "recursive_trees": args.recursive_trees,
        "mean_nodes_per_tree": mean_nodes,
        "lstm_seq_len": seq_len,
        "steps": args.steps,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "optimizer": f"SGD(lr={LR})",
        "torch_version": torch.__version__,
        "cpu": cpu_name(),
        "num_threads": torch.get_num_threads(),
        "device": str(dev),
    }
    if compiled is not None:
        res.update(
            compiled_nodes_per_s=rate["compiled"],
            compiled_trees_per_s=median([args.steps * args.batch / t for t, _, _ in runs["compiled"]]),
            compiled_ratio_vs_recursive=rate["compiled"] / rate["recursive"],
            compiled_ratio_vs_lstm=rate["compiled"] / rate["lstm"],
            compiled_step_ms=step_ms["compiled"],
            compiled_graphs=_compiled_graphs(),
            compile_warmup_s=compile_s,
        )
    if args.json:
        print_json(res)
        return
    if compiled is not None:
        print(
            f"compiled: {res['compiled_trees_per_s']:,.1f} trees/s, {res['compiled_graphs']} graphs compiled "
            f"({res['compile_warmup_s']:.0f} s of warm-up), {recompiles} recompiles while measuring"
        )
    print(
        f"training throughput, {args.data} trees (mean {mean_nodes:.1f} nodes), batch {args.batch}, "
        f"hidden {args.hidden}, input {args.input_size}, {dev}, threads {torch.get_num_threads()}, "
        f"torch {torch.__version__}; medians of {args.repeats} x {args.steps} steps"
    )
    print_table(
        ["method", "step ms", "nodes/s", "level / this"],
        [
            ["level (nlp_lib)", step_ms["level"], rate["level"], "1.0"],
            [
                f"recursive ({args.recursive_trees} trees/step)",
                step_ms["recursive"],
                rate["recursive"],
                f"{res['ratio_vs_recursive']:.1f}",
            ],
            [f"nn.LSTM (seq len {seq_len})", step_ms["lstm"], rate["lstm"], f"{res['ratio_vs_lstm']:.2f}"],
        ]
        + (
            [
                [
                    "level, compiled cells",
                    step_ms["compiled"],
                    rate["compiled"],
                    f"{rate['level'] / rate['compiled']:.2f}",
                ]
            ]
            if compiled is not None
            else []
        ),
    )
    print(
        f"level: {res['trees_per_s']:,.1f} trees/s; schedule build is "
        f"{100 * res['schedule_overhead_share']:.1f}% of the step"
    )


def _compiled_graphs() -> int:
    """Graphs torch.compile has compiled so far in this process (0 if it never ran)."""
    try:
        from torch._dynamo.utils import counters
    except ImportError:  # pragma: no cover
        return 0
    return int(counters["stats"]["unique_graphs"])


if __name__ == "__main__":
    main()
