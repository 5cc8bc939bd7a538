"""Child-sum Tree-GRU: the GRU analogue of the child-sum Tree-LSTM, for trees of any arity.

Gated recurrent units (Cho et al., EMNLP 2014) carried over to trees the way Tai, Socher & Manning
(ACL 2015) carried the LSTM over (child sums, one reset gate per child), as in the Tree-GRU of
Kokkinos & Potamianos, "Structural Attention Neural Networks for improved sentiment analysis",
EACL 2017. For node ``j`` with input ``x_j`` and children ``k``:

    h~_j = sum_k h_k
    z_j  = sigmoid(W_z x_j + U_z h~_j + b_z)                    update gate
    r_jk = sigmoid(W_r x_j + U_r h_k + b_r)                     one reset gate per child
    g_j  = tanh(W_h x_j + U_h sum_k (r_jk * h_k) + b_h)         candidate
    h_j  = z_j * g_j + (1 - z_j) * h~_j
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from nlp_lib.cells.base import Children, TreeGRUState
from nlp_lib.configurable import Configurable
from nlp_lib.constraints import PositiveInt

__all__ = ["ChildSumTreeGRUCell"]


class ChildSumTreeGRUCell(Configurable, nn.Module):
    """Child-sum Tree-GRU cell (see the module docstring for the equations).

    Args:
        input_size: Size of a node's input vector.
        hidden_size: Size of ``h``.
    """

    def __init__(self, input_size: PositiveInt, hidden_size: PositiveInt) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.W_zrh = nn.Linear(input_size, 3 * hidden_size)  # rows: W_z, W_r, W_h (and their biases)
        self.U_z = nn.Linear(hidden_size, hidden_size, bias=False)
        self.U_r = nn.Linear(hidden_size, hidden_size, bias=False)
        self.U_h = nn.Linear(hidden_size, hidden_size, bias=False)

    def project(self, x: Tensor) -> Tensor:
        """``[K, input_size] -> [K, 3 * hidden]`` laid out ``[z, r, h]``."""
        return self.W_zrh(x)

    def forward(self, x_proj: Tensor, children: Children) -> TreeGRUState:
        x_z, x_r, x_h = x_proj.split(self.hidden_size, dim=1)  # [M, H] each
        if not children:  # leaves: h~ = 0, no reset term
            return TreeGRUState(torch.sigmoid(x_z) * torch.tanh(x_h))
        h_sum = children.sum(children.h)  # [M, H]
        z = torch.sigmoid(x_z + self.U_z(h_sum))
        r = torch.sigmoid(children.broadcast(x_r) + self.U_r(children.h))  # [E, H]
        g = torch.tanh(x_h + self.U_h(children.sum(r * children.h)))
        return TreeGRUState(z * g + (1 - z) * h_sum)
