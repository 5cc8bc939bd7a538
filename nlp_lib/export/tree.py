"""Tree classifiers as one ONNX graph that takes the tree structure as inputs.

``model.onnx`` serves every tree shape: ``tokens [N]`` (-1: no input), ``edge_parent [E]``,
``edge_child [E]``, ``edge_slot [E]`` (a child's rank among its siblings; only cells that order
their children read it, so only their graphs have it: ``onnx.json`` lists each graph's inputs),
``height [N]`` (0 for leaves) and ``roots [B]`` for the ``N`` nodes of a batch of trees
(:func:`~nlp_lib.export.runtime.tree_inputs` builds them). The level sweep is unrolled to
``max_depth`` steps: step ``d`` picks the nodes of height ``d`` and the edges to their children
from those inputs (``NonZero``: dynamic sizes), runs the cell once on them and writes their states,
i.e. the batched level schedule, computed inside the graph. Trees up to height ``max_depth - 1``
(``tree_inputs(..., max_depth=, arity=)`` refuses taller trees and wider nodes, which the graph
would get wrong silently); the bottom-up cell may be any cell of the library or a user's own. A
top-down pass (``down_cell``: bidirectional tree models) runs the same way over the levels of
``depth``, each node reading its parent's state.

The cells see their children through :class:`OnnxChildren`, the :class:`~nlp_lib.cells.Children`
view whose operations are ones torch.onnx exports with the same meaning; the cells themselves run
unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from nlp_lib.cells.base import Children
from nlp_lib.export.common import ExportError, ExportOptions, diff, session, to_onnx
from nlp_lib.export.random_inputs import caterpillar, concat_inputs, random_forest, split_inputs
from nlp_lib.export.runtime import tree_inputs
from nlp_lib.structure.schedule import TreeBatch

__all__ = ["OnnxChildren", "TreeGraph", "export_tree_classifier"]


class OnnxChildren(Children):
    """:class:`~nlp_lib.cells.Children` with the operations whose ONNX forms mean what PyTorch's do.

    Same results as ``Children`` in PyTorch; the exported tree graph hands cells this view:

    * ``count``: a ``scatter_add`` of ones per node (ONNX has no ``bincount``);
    * ``sum``: ``scatter_add`` (``index_add``'s ONNX form keeps only one of repeated indices,
      ``scatter_add``'s adds them);
    * ``max``: ``ScatterElements(max)`` from ``-inf``, then 0 for nodes without children (ONNX's
      includes the start values, so it cannot start from zeros);
    * ``slots``: always scattered by slot, without ``Children``'s reshape when every node has all
      ``n`` children (a shape test that tracing would freeze into the graph for every batch).
    """

    __slots__ = ()

    @property
    def count(self) -> Tensor:
        """``[M]`` number of children of each node (long)."""
        if self._count is None:
            ones = torch.ones_like(self.parent)
            self._count = self.parent.new_zeros(self.num_nodes).scatter_add(0, self.parent, ones)
        return self._count

    def sum(self, t: Tensor) -> Tensor:
        """``[E, ...] -> [M, ...]``: each node's sum over its children (0 for none)."""
        out = t.new_zeros((self.num_nodes,) + t.shape[1:])
        return out.scatter_add(0, self.parent.view((-1,) + (1,) * (t.dim() - 1)).expand_as(t), t)

    def max(self, t: Tensor) -> Tensor:
        """``[E, ...] -> [M, ...]``: each node's elementwise maximum over its children (0 for none)."""
        index = self.parent.view((-1,) + (1,) * (t.dim() - 1)).expand_as(t)
        start = t.new_full((self.num_nodes,) + t.shape[1:], float("-inf"))
        top = start.scatter_reduce(0, index, t, reduce="amax", include_self=True)
        return torch.where(torch.isinf(top) & (top < 0), torch.zeros_like(top), top)

    def slots(self, t: Tensor, n: int) -> Tensor:
        """``[E, ...] -> [M, n, ...]``: each node's children side by side by slot, zeros where missing."""
        self._check_width(t, n)
        return self._scatter_slots(t, n)


class TreeGraph(nn.Module):
    """The tree classifier with the structure as inputs and the level sweep unrolled ``max_depth`` times."""

    def __init__(self, model: nn.Module, max_depth: int) -> None:
        super().__init__()
        self.model, self.max_depth = model, max_depth

    def forward(self, tokens, edge_parent, edge_child, edge_slot, height, depth, roots) -> Tensor:  # noqa: ANN001
        model = self.model
        has = (tokens >= 0).unsqueeze(1)
        x = model.embedding(tokens.clamp(min=0)) * has.to(model.embedding.weight.dtype)  # no input: zeros
        # bottom-up: level = height, each node reads its children
        h = self._sweep(model.cell, x, height, edge_parent, edge_child, edge_slot)[0]
        if model.down_runner is not None:  # top-down: level = depth, each node reads its parent (slot 0)
            down = self._sweep(model.down_runner.cell, h, depth, edge_child, edge_parent, torch.zeros_like(edge_slot))
            h = torch.cat([h, down[0]], dim=-1)
        return model.classifier(h.index_select(0, roots))[:, : model.root_classes]  # SST-2: 2 of 3 at roots

    def _sweep(self, cell, x, level, receiver, sender, slot) -> tuple[Tensor, ...]:  # noqa: ANN001
        """Run ``cell`` level by level: level 0 as leaves, then each level's nodes (``NonZero``) reading
        the states of their senders over the edges ``sender -> receiver``."""
        project = getattr(cell, "project", None)
        proj = project(x) if project is not None else x
        arity = int(getattr(cell, "arity", 0) or 8)  # child-sum cells: slots unused
        n = x.shape[0]
        first_nodes = torch.nonzero(level == 0).squeeze(1)
        first = cell(proj.index_select(0, first_nodes), OnnxChildren(None, slot[:0], slot[:0], first_nodes.shape[0], 0))
        state = type(first)(*(t.new_zeros((n,) + t.shape[1:]).index_copy(0, first_nodes, t) for t in first))
        for d in range(1, self.max_depth):
            at = level == d
            nodes = torch.nonzero(at).squeeze(1)  # [M]
            local = torch.cumsum(at.to(torch.int64), 0) - 1  # node -> its row within the level
            edges = torch.nonzero(at.index_select(0, receiver)).squeeze(1)  # [E_d]: edges into this level
            rows = local.index_select(0, receiver.index_select(0, edges))
            kids = type(state)(*(t.index_select(0, sender.index_select(0, edges)) for t in state))
            new = cell(
                proj.index_select(0, nodes),
                OnnxChildren(kids, rows, slot.index_select(0, edges), nodes.shape[0], arity),
            )
            state = type(state)(*(t.index_copy(0, nodes, v) for t, v in zip(state, new, strict=True)))
        return state


def export_tree_classifier(model: nn.Module, out: Path, options: ExportOptions) -> dict[str, Any]:
    """Write a :class:`~nlp_lib.models.TreeClassifier` as ``model.onnx`` and check it."""
    max_depth = options.max_depth
    if max_depth < 2:
        raise ExportError(f"max_depth must be at least 2, got {max_depth}")
    cell = model.cell
    arity = int(getattr(cell, "arity", 0) or 8)  # child-sum cells take any number; slots are unused
    g = torch.Generator().manual_seed(0)
    vocab = model.embedding.num_embeddings
    graph = TreeGraph(model, max_depth)
    names = ["tokens", "edge_parent", "edge_child", "edge_slot", "height", "depth", "roots"]
    forest = random_forest(g, vocab, 3, min(arity, 3), 12)
    tall = tree_inputs(*([x] for x in caterpillar(max_depth - 1, vocab)))
    example = concat_inputs(forest, tall)
    dyn = {"tokens": {0: "nodes"}, "height": {0: "nodes"}, "depth": {0: "nodes"}, "roots": {0: "batch"}}
    dyn["logits"] = {0: "batch"}
    dyn.update({n: {0: "edges"} for n in ("edge_parent", "edge_child", "edge_slot")})
    to_onnx(
        graph,
        tuple(torch.from_numpy(example[n]) for n in names),
        out / "model.onnx",
        names,
        ["logits"],
        dyn,
        options.opset,
    )
    manifest: dict[str, Any] = {
        "kind": "tree_classifier",
        "files": ["model.onnx"],
        "max_depth": max_depth,
        "arity": getattr(cell, "arity", None),  # N-ary cells: the most children a node may have
        "inputs": {
            "tokens": "int64 [nodes], -1 for a node without input (nodes of all trees, each tree's root last)",
            "edge_parent": "int64 [edges], the parent node of each edge, edges grouped by parent",
            "edge_child": "int64 [edges], the child node",
            "edge_slot": "int64 [edges], the child's rank among its siblings (0 = first/left)",
            "height": f"int64 [nodes], 0 for leaves, 1 + the tallest child's otherwise; at most {max_depth - 1}",
            "depth": "int64 [nodes], 0 for roots, 1 + the parent's otherwise (graphs with a top-down pass)",
            "roots": "int64 [batch], the root node of each tree",
        },
        "outputs": {"logits": "float32 [batch, root_classes] (num_classes unless the model takes fewer at roots)"},
    }
    import onnx

    used = {i.name for i in onnx.load(str(out / "model.onnx"), load_external_data=False).graph.input}
    manifest["inputs"] = {k: v for k, v in manifest["inputs"].items() if k in used}  # child-sum cells: no slots
    if options.check:
        runtime, worst = session(out / "model.onnx"), 0.0
        for count, size in ((1, 1), (4, 20), (9, 40)):
            inputs = random_forest(g, vocab, count, min(arity, 3), size)
            if int(inputs["height"].max()) >= max_depth:
                continue
            got = runtime.run(None, {k: v for k, v in inputs.items() if k in used})[0]
            with torch.no_grad():
                expected = model(TreeBatch.from_arrays(*split_inputs(inputs))).logits
            worst = max(worst, diff(got, expected))
        manifest["max_abs_diff"] = worst
    return manifest
