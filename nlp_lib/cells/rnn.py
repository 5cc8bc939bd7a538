"""Recurrent cells: one time step, written once, run by :class:`nlp_lib.modules.SequenceRunner`.

A recurrent cell is the math for ONE time step of a batch (the ``RecurrentCell`` protocol):

* ``project(x)``: ``[..., input_size] -> [..., P]``, every term that depends on the input alone.
  The runner calls it **once for all time steps** (one large matrix multiply) before the loop.
* ``forward(x_proj_t, state) -> (output, state)``: one step, ``x_proj_t`` ``[B, P]``; ``state`` a
  NamedTuple of ``[B, hidden]`` tensors whose first field is ``h``.
* ``initial_state(batch, device=..., dtype=...)``: the zero state.

Parameters of :class:`LSTMCell` and :class:`GRUCell` are named and laid out like ``nn.LSTMCell`` /
``nn.GRUCell`` (``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``; gates ``i, f, g, o`` and
``r, z, n``), so weights copy across from ``nn.LSTM`` / ``nn.GRU`` layers (parity tests).
"""

from __future__ import annotations

import math
from typing import NamedTuple, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from nlp_lib.cells import gemm
from nlp_lib.configurable import Configurable
from nlp_lib.constraints import PositiveInt

__all__ = [
    "RecurrentCell",
    "RecurrentCellBase",
    "LSTMState",
    "RNNState",
    "LSTMCell",
    "GRUCell",
    "LayerNormLSTMCell",
    "MinimalGatedCell",
]


class LSTMState(NamedTuple):
    """``h`` and ``c``, each ``[batch, hidden]``."""

    h: Tensor
    c: Tensor


class RNNState(NamedTuple):
    """``h``, ``[batch, hidden]`` (GRU and other single-vector cells)."""

    h: Tensor


@runtime_checkable
class RecurrentCell(Protocol):
    """What the sequence runner needs from a cell (see the module docstring)."""

    input_size: int
    hidden_size: int

    def project(self, x: Tensor) -> Tensor: ...

    def initial_state(self, batch: int, *, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, ...]: ...

    def __call__(self, x_proj: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, tuple[Tensor, ...]]: ...


class RecurrentCellBase(Configurable, nn.Module):
    """Convenience base: sizes, a zero initial state of ``state_type``, PyTorch's uniform init.

    Subclass it, set ``state_type``, and write ``project`` and ``forward``. Nothing else is
    inherited: any module with the protocol's methods works just as well.
    """

    state_type: type = RNNState

    def __init__(self, input_size: PositiveInt, hidden_size: PositiveInt) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size

    def reset_parameters(self) -> None:
        """``U(-1/sqrt(hidden), 1/sqrt(hidden))`` for every parameter, as ``nn.LSTM`` does."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def project(self, x: Tensor) -> Tensor:
        return x

    def initial_state(self, batch: int, *, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, ...]:
        z = torch.zeros(batch, self.hidden_size, device=device, dtype=dtype)
        return self.state_type(*([z] * len(self.state_type._fields)))


class LSTMCell(RecurrentCellBase):
    """Long short-term memory (Hochreiter & Schmidhuber 1997), laid out like ``nn.LSTMCell``.

    ``i, f, g, o = W_ih x + b_ih + W_hh h + b_hh``; ``c' = sigmoid(f) c + sigmoid(i) tanh(g)``;
    ``h' = sigmoid(o) tanh(c')``.
    """

    state_type = LSTMState

    def __init__(self, input_size: PositiveInt, hidden_size: PositiveInt) -> None:
        super().__init__(input_size, hidden_size)
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(4 * hidden_size))
        self.bias_hh = nn.Parameter(torch.empty(4 * hidden_size))
        self.reset_parameters()

    def project(self, x: Tensor) -> Tensor:
        """``[..., in] -> [..., 4H]``: ``W_ih x + b_ih + b_hh`` (both biases hoisted)."""
        return gemm.linear(x, self.weight_ih, self.bias_ih + self.bias_hh)

    def forward(self, x_proj: Tensor, state: LSTMState) -> tuple[Tensor, LSTMState]:
        h, c = state
        gates = gemm.addmm(x_proj, h, self.weight_hh)  # [B, 4H]: x_proj + h W_hh^T
        i, f, g, o = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, LSTMState(h, c)


class GRUCell(RecurrentCellBase):
    """Gated recurrent unit (Cho et al. 2014), laid out like ``nn.GRUCell``.

    ``r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)``, ``z`` likewise,
    ``n = tanh(W_in x + b_in + r (W_hn h + b_hn))``, ``h' = (1 - z) n + z h``.
    """

    state_type = RNNState

    def __init__(self, input_size: PositiveInt, hidden_size: PositiveInt) -> None:
        super().__init__(input_size, hidden_size)
        self.weight_ih = nn.Parameter(torch.empty(3 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(3 * hidden_size, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(3 * hidden_size))
        self.bias_hh = nn.Parameter(torch.empty(3 * hidden_size))
        self.reset_parameters()

    def project(self, x: Tensor) -> Tensor:
        """``[..., in] -> [..., 3H]``: ``W_ih x + b_ih`` (``b_hn`` stays inside the reset gate)."""
        return gemm.linear(x, self.weight_ih, self.bias_ih)

    def forward(self, x_proj: Tensor, state: RNNState) -> tuple[Tensor, RNNState]:
        (h,) = state
        hh = gemm.linear(h, self.weight_hh, self.bias_hh)  # [B, 3H]
        x_rz, x_n = x_proj.split([2 * self.hidden_size, self.hidden_size], dim=1)
        h_rz, h_n = hh.split([2 * self.hidden_size, self.hidden_size], dim=1)
        r, z = torch.sigmoid(x_rz + h_rz).chunk(2, dim=1)
        n = torch.tanh(x_n + r * h_n)
        h = n + z * (h - n)  # (1 - z) n + z h
        return h, RNNState(h)


class LayerNormLSTMCell(RecurrentCellBase):
    """LSTM with layer normalisation (Ba, Kiros & Hinton 2016, "Layer Normalization", sec. 3.1).

    ``gates = LN(W_ih x) + LN(W_hh h) + b``; ``c' = sigmoid(f) c + sigmoid(i) tanh(g)``;
    ``h' = sigmoid(o) tanh(LN(c'))``. The input term's normalisation depends on ``x`` alone, so it
    is hoisted with the projection.
    """

    state_type = LSTMState

    def __init__(self, input_size: PositiveInt, hidden_size: PositiveInt) -> None:
        super().__init__(input_size, hidden_size)
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        self.bias = nn.Parameter(torch.zeros(4 * hidden_size))
        bound = 1.0 / math.sqrt(hidden_size)
        nn.init.uniform_(self.weight_ih, -bound, bound)
        nn.init.uniform_(self.weight_hh, -bound, bound)
        self.ln_ih = nn.LayerNorm(4 * hidden_size)
        self.ln_hh = nn.LayerNorm(4 * hidden_size)
        self.ln_c = nn.LayerNorm(hidden_size)

    def project(self, x: Tensor) -> Tensor:
        return self.ln_ih(nn.functional.linear(x, self.weight_ih)) + self.bias  # [..., 4H]

    def forward(self, x_proj: Tensor, state: LSTMState) -> tuple[Tensor, LSTMState]:
        h, c = state
        gates = x_proj + self.ln_hh(h @ self.weight_hh.t())  # [B, 4H]
        i, f, g, o = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(self.ln_c(c))
        return h, LSTMState(h, c)


class MinimalGatedCell(RecurrentCellBase):
    """Minimal gated unit (Zhou, Wu, Zhang & Zhou 2016): one forget gate that also gates the reset.

    ``f = sigmoid(W_f x + U_f h + b_f)``; ``h~ = tanh(W_h x + U_h (f * h) + b_h)``;
    ``h' = (1 - f) h + f h~``. The candidate reads the *gated* state ``f * h``, so its recurrent
    matrix multiply depends on this step's gate: ``nn.LSTM`` / ``nn.GRU`` cannot express it.
    """

    state_type = RNNState

    def __init__(self, input_size: PositiveInt, hidden_size: PositiveInt) -> None:
        super().__init__(input_size, hidden_size)
        self.W = nn.Linear(input_size, 2 * hidden_size)  # rows: W_f, W_h (and b_f, b_h)
        self.U_f = nn.Linear(hidden_size, hidden_size, bias=False)
        self.U_h = nn.Linear(hidden_size, hidden_size, bias=False)

    def project(self, x: Tensor) -> Tensor:
        return self.W(x)  # [..., 2H]

    def forward(self, x_proj: Tensor, state: RNNState) -> tuple[Tensor, RNNState]:
        (h,) = state
        x_f, x_h = x_proj.chunk(2, dim=1)
        f = torch.sigmoid(x_f + self.U_f(h))
        cand = torch.tanh(x_h + self.U_h(f * h))
        h = h + f * (cand - h)
        return h, RNNState(h)
