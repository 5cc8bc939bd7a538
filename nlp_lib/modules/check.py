"""Check a tree cell: batched (level) and one-node-at-a-time (recursive) runs must agree."""

from __future__ import annotations

import copy
import random

import torch
from torch import Tensor, nn

from nlp_lib.modules.tree_runner import TreeRunner
from nlp_lib.structure.dag import Dag
from nlp_lib.structure.random_trees import random_dag, random_tree
from nlp_lib.structure.schedule import TreeBatch
from nlp_lib.structure.tree import Tree

__all__ = ["check_cell"]


def check_cell(
    cell: nn.Module,
    *,
    graphs: list[Tree | Dag] | None = None,
    num_graphs: int = 6,
    max_nodes: int = 40,
    dags: bool = True,
    direction: str = "up",
    atol: float = 1e-8,
    seed: int = 0,
) -> float:
    """Run ``cell`` batched and one node at a time on the same graphs; compare states and gradients.

    The cell is copied and run in float64. Every node gets a random input; the loss is a fixed
    random weighting of every node's every state field, so each output and gradient is compared.

    Args:
        cell: The cell (not modified).
        graphs: Trees or DAGs to use; by default random trees and (``dags=True``) random DAGs with
            at most ``cell.arity`` children per node when the cell has an ``arity``.
        num_graphs: How many random graphs of each kind.
        max_nodes: Their largest size.
        dags: Also check random DAGs (nodes with several parents).
        direction: ``"up"`` or ``"down"`` (a top-down pass).
        atol: Largest difference allowed.
        seed: Seed for the graphs, inputs and loss weights.

    Returns:
        The largest difference found.

    Raises:
        AssertionError: naming the state field or parameter that differs, and by how much.
        TypeError: a recurrent cell (this checks tree cells).
    """
    if hasattr(cell, "project") and hasattr(cell, "initial_state"):
        raise TypeError(
            f"check_cell checks tree cells; {type(cell).__name__} is a recurrent cell (project/initial_state): "
            "SequenceRunner does the masking and directions for any such cell (docs/recurrent_cells.md)"
        )
    rng = random.Random(seed)
    arity = getattr(cell, "arity", None)
    if graphs is None:
        graphs = [random_tree(rng.randint(1, max_nodes), rng, max_children=arity) for _ in range(num_graphs)]
        if dags:
            graphs += [random_dag(rng.randint(1, max_nodes), rng, max_inputs=arity) for _ in range(num_graphs)]
    cell = copy.deepcopy(cell).to(torch.float64)
    gen = torch.Generator().manual_seed(seed)
    xs = [torch.randn(len(g), cell.input_size, generator=gen, dtype=torch.float64) for g in graphs]

    batch = _schedule(graphs)
    inv = torch.empty_like(batch.order)
    inv[batch.order] = torch.arange(batch.num_nodes)

    def run(mode: str) -> tuple[list[Tensor], dict[str, Tensor], Tensor]:
        x = torch.cat(xs).requires_grad_()  # graph by graph, node by node
        states = TreeRunner(cell, mode=mode, direction=direction)(batch, x[batch.order])
        states = [s[inv] for s in states]  # back to graph-by-graph node order
        wgen = torch.Generator().manual_seed(seed + 1)
        loss = sum((s * torch.randn(s.shape, generator=wgen, dtype=s.dtype)).sum() for s in states)
        params = [p for p in cell.parameters() if p.requires_grad]
        grads = torch.autograd.grad(loss, [x, *params], allow_unused=True)
        named = {
            n: g if g is not None else torch.zeros_like(p) for (n, p), g in zip(_named(cell), grads[1:], strict=True)
        }
        return [s.detach() for s in states], named, grads[0]

    # "level": one batched call per level. "recursive": one call per node (each call sees M = 1), so a
    # cell that mixes the nodes of a level (x.mean(0), batch statistics) shows up as a difference.
    b_states, b_grads, b_dx = run("level")
    r_states, r_grads, r_dx = run("recursive")
    worst = 0.0
    for i, (a, b) in enumerate(zip(b_states, r_states, strict=True)):
        worst = max(worst, _check(a, b, atol, f"state field {i}"))
    for name in b_grads:
        worst = max(worst, _check(b_grads[name], r_grads[name], atol, f"gradient of {name}"))
    return max(worst, _check(b_dx, r_dx, atol, "gradient of the inputs"))


def _named(cell: nn.Module) -> list[tuple[str, Tensor]]:
    return [(n, p) for n, p in cell.named_parameters() if p.requires_grad]


def _schedule(graphs: list[Tree | Dag]) -> TreeBatch:
    if all(isinstance(g, Tree) for g in graphs):
        return TreeBatch.from_arrays([g.parent for g in graphs])
    return TreeBatch.from_dags([g if isinstance(g, Dag) else Dag.from_tree(g) for g in graphs])


def _check(a: Tensor, b: Tensor, atol: float, what: str) -> float:
    diff = (a - b).abs().max().item() if a.numel() else 0.0
    if not diff <= atol:
        raise AssertionError(
            f"batched and one-at-a-time runs differ in the {what}: max |difference| {diff:.3g} > {atol:g}"
        )
    return diff
