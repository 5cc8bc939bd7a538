"""Work balance across data-parallel ranks: node-budget balanced batches vs DistributedSampler.

Simulates ``--ranks`` ranks over the SST train trees for one epoch and reports, per step, the
largest rank's node count divided by the mean rank's (1.0 = perfectly balanced; the slowest rank
sets every step's pace), as the mean over steps and the worst step:

* ``balanced``: :class:`nlp_lib.data.sampling.BalancedBatchSampler` with a node budget;
* ``distributed``: ``torch.utils.data.DistributedSampler`` with fixed-size batches holding the same
  number of trees on average (``budget / mean tree size``).

    python scripts/bench/sampler.py --json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from _common import print_json, print_table  # this script's folder is on sys.path
from torch.utils.data import DistributedSampler

from nlp_lib.data.ptb import read_ptb_trees
from nlp_lib.data.sampling import BalancedBatchSampler, step_balance

REPO = Path(__file__).resolve().parents[2]


def balance(sizes: list[int], ranks: int, budget: int, epochs: int) -> dict:
    """Per-step max/mean rank node counts of both samplers over ``epochs`` simulated epochs."""
    per_batch = max(1, round(budget / (sum(sizes) / len(sizes))))
    res: dict[str, list[float]] = {"balanced": [], "balanced_worst": [], "distributed": [], "distributed_worst": []}
    batches_equal = True
    for epoch in range(epochs):
        plan = BalancedBatchSampler(sizes, budget, num_replicas=ranks, seed=0)
        plan.set_epoch(epoch)
        steps = [[sum(sizes[i] for i in b) for b in step] for step in plan.plan()]
        mean, worst = step_balance(steps)
        res["balanced"].append(mean)
        res["balanced_worst"].append(worst)
        per_rank = []
        for r in range(ranks):
            ds = DistributedSampler(range(len(sizes)), num_replicas=ranks, rank=r, shuffle=True, seed=0)
            ds.set_epoch(epoch)
            idx = list(ds)
            per_rank.append([sum(sizes[i] for i in idx[k : k + per_batch]) for k in range(0, len(idx), per_batch)])
        batches_equal &= len({len(x) for x in per_rank}) == 1
        mean, worst = step_balance(list(zip(*per_rank, strict=False)))
        res["distributed"].append(mean)
        res["distributed_worst"].append(worst)
    avg = {k: sum(v) / len(v) for k, v in res.items()}
    return {
        "balanced_max_over_mean": avg["balanced"],
        "balanced_worst_step": max(res["balanced_worst"]),
        "distributed_max_over_mean": avg["distributed"],
        "distributed_worst_step": max(res["distributed_worst"]),
        "ranks": ranks,
        "node_budget": budget,
        "distributed_trees_per_batch": per_batch,
        "epochs": epochs,
        "trees": len(sizes),
        "distributed_equal_batch_counts": batches_equal,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sst-path", type=Path, default=REPO / "../shared/data/sst/trees/train.txt")
    ap.add_argument("--ranks", type=int, default=8)
    ap.add_argument("--budget", type=int, default=2000, help="nodes per batch")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not args.sst_path.is_file():
        sys.exit(f"error: SST trees not found at {args.sst_path}")
    sizes = [len(t) for t in read_ptb_trees(args.sst_path).trees]
    out = balance(sizes, args.ranks, args.budget, args.epochs)
    per_batch = out["distributed_trees_per_batch"]
    avg = {"balanced": out["balanced_max_over_mean"], "distributed": out["distributed_max_over_mean"]}
    if args.json:
        print_json(out)
        return
    print(f"{len(sizes)} SST trees, {args.ranks} ranks, node budget {args.budget} ({per_batch} trees a fixed batch)")
    print_table(
        ["sampler", "max rank / mean rank (mean over steps)", "worst step"],
        [
            ["BalancedBatchSampler", f"{avg['balanced']:.4f}", f"{out['balanced_worst_step']:.4f}"],
            ["DistributedSampler, fixed size", f"{avg['distributed']:.4f}", f"{out['distributed_worst_step']:.4f}"],
        ],
    )


if __name__ == "__main__":
    main()
