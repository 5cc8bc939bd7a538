"""Tree classifier: embeddings -> tree cell run level by level -> a label for the root (and every node).

This is the model of Tai, Socher & Manning (ACL 2015) for sentiment over constituency trees (root
and phrase labels) and of Nangia & Bowman (2018) for ListOps. It is a plain ``nn.Module``: it imports
neither Lightning nor Hydra, and takes its cell as a constructed module, so any
:class:`~nlp_lib.cells.base.TreeCell` (a user's own included) plugs in.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from nlp_lib.constraints import PositiveInt, Probability
from nlp_lib.models.base import SavableModel
from nlp_lib.modules.tree_runner import Mode, TreeRunner
from nlp_lib.structure.schedule import TreeBatch

__all__ = ["TreeClassifier", "TreeClassifierOutput"]


class TreeClassifierOutput(NamedTuple):
    """What :class:`TreeClassifier` returns.

    Attributes:
        logits: ``[B, root_classes]`` one row per tree (its root; ``root_classes`` is ``num_classes``
            unless the model was built with fewer).
        node_logits: ``[N, num_classes]`` one row per node in the batch's level order, or ``None``
            when the model was built with ``node_logits=False``.
        root_hidden: ``[B, hidden]`` the roots' hidden states (sentence representations).
    """

    logits: Tensor
    node_logits: Tensor | None
    root_hidden: Tensor


class TreeClassifier(SavableModel):
    """Classify trees (root label) and optionally every node (phrase labels).

    Args:
        vocab_size: Number of token ids; a node with token id ``-1`` has no input.
        num_classes: Number of labels.
        root_classes: Roots take only the first so many labels (default: all): ``logits`` has that
            many columns, ``node_logits`` all ``num_classes``. SST-2 as Tai et al. (2015) trained it:
            phrases negative / positive / neutral, sentences negative / positive (2 of 3).
        cell: The tree cell, e.g. ``NaryTreeLSTMCell(input_size=300, hidden_size=150)``. The
            embedding size is the cell's ``input_size``.
        dropout: Dropout on the embeddings and on the states fed to the classifier.
        node_logits: Also return a label distribution for every node.
        mode: ``"level"`` (batched) or ``"recursive"`` (one node at a time, for debugging).
        down_cell: A second cell for a top-down pass (a bidirectional tree model): it runs from
            the root to the leaves, each node reading its parent's top-down state and, as its
            input, its own bottom-up ``h``; a node's representation is then ``[h_up; h_down]``.
            Its ``input_size`` must be ``cell.hidden_size``.
        compile: Compile the cells with ``torch.compile`` (see :class:`TreeRunner`).
    """

    def __init__(
        self,
        *,
        vocab_size: int,
        num_classes: int,
        cell: nn.Module,
        root_classes: PositiveInt | None = None,
        dropout: Probability = 0.0,
        node_logits: bool = False,
        mode: Mode = "level",
        down_cell: nn.Module | None = None,
        compile: bool = False,
    ) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.num_classes = num_classes
        if root_classes is not None and not 1 <= root_classes <= num_classes:
            raise ValueError(f"root_classes ({root_classes}) must be between 1 and num_classes ({num_classes})")
        self.root_classes = root_classes or num_classes
        self.embedding = nn.Embedding(vocab_size, cell.input_size)
        self.runner = TreeRunner(cell, mode=mode, compile=compile)
        out_size = cell.hidden_size
        self.down_runner: TreeRunner | None = None
        if down_cell is not None:
            if down_cell.input_size != cell.hidden_size:
                raise ValueError(
                    f"down_cell.input_size ({down_cell.input_size}) must equal cell.hidden_size ({cell.hidden_size}):"
                    " the top-down pass reads the bottom-up states"
                )
            self.down_runner = TreeRunner(down_cell, mode=mode, direction="down", compile=compile)
            out_size += down_cell.hidden_size
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(out_size, num_classes)
        self.node_logits = node_logits

    @property
    def mode(self) -> Mode:
        """``"level"`` or ``"recursive"``; setting it switches every pass."""
        return self.runner.mode

    @mode.setter
    def mode(self, value: Mode) -> None:
        for r in (self.runner, self.down_runner):
            if r is not None:
                r.mode = value

    @property
    def cell(self) -> nn.Module:
        return self.runner.cell

    def forward(self, batch: TreeBatch) -> TreeClassifierOutput:
        """Logits for every tree of the batch (and every node if configured)."""
        if batch.unique_tokens is not None and not (self.training and self.dropout.p > 0):
            # Each distinct word is embedded and projected once, then gathered per occurrence (a
            # batch of SST sentences holds ~2.6 occurrences per distinct word). With dropout in
            # training every occurrence gets its own mask, so every occurrence is embedded.
            x = self.embedding(batch.unique_tokens)  # [U, input_size]
            state = self.runner(batch, x, batch.input_positions, batch.token_inverse)
        else:
            x = self.dropout(self.embedding(batch.tokens[batch.input_positions]))  # [K, input_size]
            state = self.runner(batch, x, batch.input_positions)
        h = state[0]  # [N, hidden]
        if self.down_runner is not None:
            h = torch.cat([h, self.down_runner(batch, h)[0]], dim=-1)  # [N, hidden + down hidden]
        root_h = h[batch.roots]  # [B, hidden]
        logits = self.classifier(self.dropout(root_h))[:, : self.root_classes]  # [B, root classes]
        node = self.classifier(self.dropout(h)) if self.node_logits else None  # [N, C]
        return TreeClassifierOutput(logits, node, root_h)
