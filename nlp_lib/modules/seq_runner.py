"""Run recurrent cells over variable-length batches: masking, bidirectional, stacked, dropout.

The user writes a cell for one time step (:mod:`nlp_lib.cells.rnn`); :class:`SequenceRunner` runs
it over ``[B, T, input]`` batches whose sequences have different lengths, with no
``PackedSequence`` handling on the user's side:

* **Hoisted input projections**: ``cell.project`` runs once over all ``B * T`` steps (one large
  matrix multiply); the time loop does only the recurrent part.
* **Masking**: a sequence's state stops changing after its last step (its final state is the
  state at its own last step) and its outputs past its end are zeros, so results equal running
  every sequence alone (a test checks it).
* **Bidirectional**: the backward direction reads each sequence reversed *within its length*.
* **Stacked**: ``num_layers`` layers, ``dropout`` between them (as ``nn.LSTM``); variational
  ``recurrent_dropout`` (Gal & Ghahramani 2016): one mask per sequence on the recurrent ``h``, the
  same at every step.
* ``fused=True``: when every cell is a plain :class:`~nlp_lib.cells.LSTMCell` or
  :class:`~nlp_lib.cells.GRUCell` (and there is no recurrent dropout), dispatch to PyTorch's fused
  ``nn.LSTM`` / ``nn.GRU`` kernels with the cells' own weights; results are the same.
* ``compile=True``: the step function goes through ``torch.compile``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.func import functional_call
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from nlp_lib.cells.rnn import GRUCell, LSTMCell
from nlp_lib.constraints import PositiveInt, Probability

__all__ = ["SequenceRunner", "SequenceOutput"]

CellFactory = Callable[[int, int], nn.Module]


class SequenceOutput(NamedTuple):
    """What :class:`SequenceRunner` returns.

    Attributes:
        outputs: ``[B, T, directions * hidden]`` the top layer's outputs (zeros past each length).
        last: ``[B, directions * hidden]`` the top layer's final ``h`` per direction (forward: at the
            sequence's last step; backward: at its first step).
        states: Per layer and direction (index ``layer * directions + d``), the final state.
    """

    outputs: Tensor
    last: Tensor
    states: list[tuple[Tensor, ...]]


class SequenceRunner(nn.Module):
    """Applies a recurrent cell over variable-length batches (see the module docstring).

    Args:
        cell: Builds one cell from ``(input_size, hidden_size)``, e.g. ``nlp_lib.cells.LSTMCell``
            or a ``functools.partial`` of a user's class (Hydra: ``_partial_: true``). One cell is
            built per layer and direction.
        input_size: Size of the inputs.
        hidden_size: Size of each direction's ``h``.
        num_layers: Stacked layers.
        bidirectional: Also run every layer right to left and concatenate.
        dropout: Dropout on each layer's outputs except the last's.
        recurrent_dropout: Variational dropout on the recurrent ``h`` (one mask per sequence).
        fused: Use PyTorch's fused LSTM/GRU when the cells allow it (see :attr:`is_fused`).
        compile: ``torch.compile`` the step function.
    """

    def __init__(
        self,
        *,
        cell: CellFactory,
        input_size: PositiveInt,
        hidden_size: PositiveInt,
        num_layers: PositiveInt = 1,
        bidirectional: bool = False,
        dropout: Probability = 0.0,
        recurrent_dropout: Probability = 0.0,
        fused: bool = False,
        compile: bool = False,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.directions = 2 if bidirectional else 1
        self.dropout = dropout
        self.recurrent_dropout = recurrent_dropout
        self.cells = nn.ModuleList(
            cell(input_size if layer == 0 else hidden_size * self.directions, hidden_size)
            for layer in range(num_layers)
            for _ in range(self.directions)
        )
        self.fused = fused
        self.compile = compile

    @property
    def output_size(self) -> int:
        return self.hidden_size * self.directions

    @property
    def is_fused(self) -> bool:
        """Whether ``forward`` runs PyTorch's fused kernel (``fused=True`` and plain LSTM/GRU cells)."""
        kinds = {type(c) for c in self.cells}
        return self.fused and len(kinds) == 1 and kinds <= {LSTMCell, GRUCell} and self.recurrent_dropout == 0

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> SequenceOutput:
        """Run the layers over ``x`` ``[B, T, input_size]``; ``lengths`` ``[B]`` (default: all ``T``)."""
        b, t, _ = x.shape
        if lengths is None:
            lengths = torch.full((b,), t, dtype=torch.long)  # host memory: needs_mask reads it for free
        needs_mask = _needs_mask(lengths, t)
        host_lengths = lengths if lengths.device.type == "cpu" else None
        lengths = lengths.to(x.device, non_blocking=True)  # host lengths: no stream sync
        if self.is_fused:
            return self._fused(x, lengths, host_lengths)
        steps = torch.arange(t, device=x.device)
        valid = steps.unsqueeze(0) < lengths.unsqueeze(1)  # [B, T]
        rev = torch.where(valid, lengths.unsqueeze(1) - 1 - steps, steps)  # reverse within each length
        states: list[tuple[Tensor, ...]] = []
        lasts: list[Tensor] = []
        layer_in = x
        for layer in range(self.num_layers):
            outs = []
            for d in range(self.directions):
                cell = self.cells[layer * self.directions + d]
                inp = layer_in if d == 0 else _gather_time(layer_in, rev)
                out, state = self._run_direction(cell, inp, valid, needs_mask)
                outs.append(out if d == 0 else _gather_time(out, rev))
                states.append(state)
                if layer == self.num_layers - 1:
                    lasts.append(state[0])
            layer_in = torch.cat(outs, dim=-1) if len(outs) > 1 else outs[0]
            if layer < self.num_layers - 1 and self.dropout > 0:
                layer_in = nn.functional.dropout(layer_in, self.dropout, self.training)
        return SequenceOutput(layer_in, torch.cat(lasts, dim=-1), states)

    def _run_direction(
        self, cell: nn.Module, x: Tensor, valid: Tensor, needs_mask: bool
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        b, t, _ = x.shape
        # Time-major: each step's rows are contiguous. Every step's input term in one matrix multiply.
        proj = cell.project(x.transpose(0, 1))  # [T, B, P]
        state = cell.initial_state(b, device=x.device, dtype=x.dtype)
        mask = None
        if self.training and self.recurrent_dropout > 0:  # one mask per sequence, every step
            keep = 1.0 - self.recurrent_dropout
            mask = torch.bernoulli(torch.full((b, self.hidden_size), keep, device=x.device, dtype=x.dtype)) / keep
        step = _compiled_step() if self.compile else _step
        # unbind, not proj[:, i]: the backward of t slices would zero-fill t copies of the whole tensor
        steps = proj.unbind(0)
        masks = valid.t().unsqueeze(-1).unbind(0) if needs_mask else [None] * t
        outs = []
        for x_t, valid_t in zip(steps, masks, strict=True):
            out, state = step(cell, x_t, state, valid_t, mask)
            outs.append(out)
        return torch.stack(outs, dim=1), state  # [B, T, H] (stacked batch-major in one copy)

    def _fused(self, x: Tensor, lengths: Tensor, host_lengths: Tensor | None) -> SequenceOutput:
        kind = type(self.cells[0])
        template = _template(kind, self.input_size, self.hidden_size, self.num_layers, self.directions, x.device)
        params = {}
        for layer in range(self.num_layers):
            for d in range(self.directions):
                cell = self.cells[layer * self.directions + d]
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    params[name + sfx] = getattr(cell, name)
        template.dropout = self.dropout if self.training else 0.0
        template.train(self.training)
        # cuDNN's packed kernels take host lengths: one copy per batch when they live on the device
        host = host_lengths if host_lengths is not None else lengths.cpu()
        packed = pack_padded_sequence(x, host, batch_first=True, enforce_sorted=False)
        out, hidden = functional_call(template, params, (packed,))
        outputs, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        h_n = hidden[0] if isinstance(hidden, tuple) else hidden  # [L * D, B, H]
        c_n = hidden[1] if isinstance(hidden, tuple) else None
        states = [(h_n[i], c_n[i]) if c_n is not None else (h_n[i],) for i in range(self.num_layers * self.directions)]
        last = torch.cat([h_n[-self.directions + d] for d in range(self.directions)], dim=-1)
        return SequenceOutput(outputs, last, states)


def _needs_mask(lengths: Tensor, t: int) -> bool:
    """Whether any sequence is shorter than ``t``, decided without waiting for a device.

    Lengths in host memory (the CPU, or a batch not yet moved) are read there; lengths on an
    accelerator are not read at all (that would stall the queue): those batches are masked, which
    gives the same results. A traced export always masks.
    """
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or lengths.device.type != "cpu":
        return True
    return bool((lengths.numpy() < t).any())  # host memory: no device copy


def _step(
    cell: nn.Module, x_t: Tensor, state: tuple[Tensor, ...], valid_t: Tensor | None, mask: Tensor | None
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """One step; with ``valid_t`` masked: finished sequences keep their state and output zeros."""
    fed = state if mask is None else type(state)(state[0] * mask, *state[1:])
    res = cell(x_t, fed)
    if not (isinstance(res, tuple) and len(res) == 2):
        raise TypeError(
            f"{type(cell).__name__}.forward must return (output, new_state), got {type(res).__name__}"
            + (f" of {len(res)}" if isinstance(res, tuple) else "")
            + " (docs/recurrent_cells.md, 'The protocol')"
        )
    out, new = res
    if valid_t is None:
        return out, new
    new = type(new)(*(torch.where(valid_t, n, s) for n, s in zip(new, state, strict=True)))
    return out * valid_t, new


_COMPILED: list = []


def _compiled_step() -> Callable:
    if not _COMPILED:
        # dynamic=True: the batch size is symbolic, so a handful of graphs (first step or not,
        # masked or not) serve every batch; static sizes recompiled at every new batch size until
        # dynamo's recompile limit, then ran uncompiled (tests/modules/test_compile.py counts them).
        _COMPILED.append(torch.compile(_step, dynamic=True))
    return _COMPILED[0]


def _gather_time(x: Tensor, index: Tensor) -> Tensor:
    """``x[b, index[b, t]]`` for ``x`` ``[B, T, H]``."""
    return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


_TEMPLATES: dict = {}


def _template(kind: type, input_size: PositiveInt, hidden: int, layers: int, directions: int, device: torch.device):
    key = (kind, input_size, hidden, layers, directions, str(device))
    if key not in _TEMPLATES:
        cls = nn.LSTM if kind is LSTMCell else nn.GRU
        _TEMPLATES[key] = cls(
            input_size, hidden, num_layers=layers, bidirectional=directions == 2, batch_first=True, device=device
        )
    return _TEMPLATES[key]
