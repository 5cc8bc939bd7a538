"""Plain recursive neural network cell (Socher et al., ICML 2011; EMNLP 2013 "RNN").

A node's vector is one affine map of its children's vectors, side by side by slot, and of its own
input, through a ``tanh``:

    h_j = tanh(W [h_j1; ...; h_jN] + W_x x_j + b)

Missing children count as zero vectors; a leaf is ``tanh(W_x x_j + b)``. With ``arity=2`` and inputs
on the leaves only, this is the recursive autoencoder / RNN composition of Socher et al.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from nlp_lib.cells.base import Children, RecursiveState
from nlp_lib.configurable import Configurable
from nlp_lib.constraints import PositiveInt
from nlp_lib.errors import StructureError

__all__ = ["RecursiveNNCell"]


class RecursiveNNCell(Configurable, nn.Module):
    """``h = tanh(W [children side by side] + W_x x + b)`` for trees with at most ``arity`` children.

    Args:
        input_size: Size of a node's input vector.
        hidden_size: Size of ``h``.
        arity: The largest number of (ordered) children a node may have.
    """

    def __init__(self, input_size: PositiveInt, hidden_size: PositiveInt, arity: PositiveInt = 2) -> None:
        super().__init__()
        if arity < 1:
            raise ValueError(f"arity must be at least 1, got {arity}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.arity = arity
        self.W_x = nn.Linear(input_size, hidden_size)  # W_x and b
        self.W = nn.Linear(arity * hidden_size, hidden_size, bias=False)

    def project(self, x: Tensor) -> Tensor:
        """``[K, input_size] -> [K, hidden]``: ``W_x x + b``."""
        return self.W_x(x)

    def forward(self, x_proj: Tensor, children: Children) -> RecursiveState:
        if not children:
            return RecursiveState(torch.tanh(x_proj))
        kids = children.slots(children.h, self.arity).flatten(1)  # [M, N*H]
        return RecursiveState(torch.tanh(x_proj + self.W(kids)))

    def check(self, max_children: int) -> None:
        """Raise if a batch has a node with more children than this cell's arity."""
        if max_children > self.arity:
            raise StructureError(f"RecursiveNNCell(arity={self.arity}) got a node with {max_children} children")
