"""Recurrent cells, one step at a time: LSTMCell / GRUCell equal nn.LSTMCell / nn.GRUCell with the same
weights; LayerNormLSTMCell and MinimalGatedCell equal their papers' equations written out here.

(The sequence runner's parity with nn.LSTM / nn.GRU over whole padded batches is in
tests/modules/test_seq_runner.py.)
"""

import pytest
import torch
from torch import nn

from nlp_lib.cells import GRUCell, LayerNormLSTMCell, LSTMCell, LSTMState, MinimalGatedCell, RNNState

B, IN, H, STEPS = 3, 5, 4, 4


def _steps(cell, xs, state):
    """Run ``cell`` over ``xs`` ([T, B, IN]) from ``state``: the outputs stacked and the last state."""
    outs = []
    for x in xs:
        out, state = cell(cell.project(x), state)
        outs.append(out)
    return torch.stack(outs), state


def _grads(loss, params):
    return torch.autograd.grad(loss, params)


@pytest.mark.parametrize("ours, theirs", [(LSTMCell, nn.LSTMCell), (GRUCell, nn.GRUCell)], ids=["lstm", "gru"])
def test_parameters_copy_from_torch_and_every_step_and_gradient_agrees(ours, theirs):
    torch.manual_seed(0)
    ref = theirs(IN, H).double()
    cell = ours(IN, H).double()
    cell.load_state_dict(ref.state_dict())  # the same names and layouts: weight_ih, weight_hh, bias_ih, bias_hh
    xs = torch.randn(STEPS, B, IN, dtype=torch.float64)
    h0 = torch.randn(B, H, dtype=torch.float64)
    c0 = torch.randn(B, H, dtype=torch.float64)
    state = LSTMState(h0, c0) if ours is LSTMCell else RNNState(h0)
    outs, last = _steps(cell, xs, state)
    ref_outs, ref_state = [], (h0, c0) if ours is LSTMCell else h0
    for x in xs:
        ref_state = ref(x, ref_state)
        ref_outs.append(ref_state[0] if ours is LSTMCell else ref_state)
    ref_outs = torch.stack(ref_outs)
    torch.testing.assert_close(outs, ref_outs, atol=1e-12, rtol=0)
    for a, b in zip(last, ref_state if ours is LSTMCell else (ref_state,), strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
    w = torch.randn_like(outs)
    for a, b in zip(
        _grads((outs * w).sum(), list(cell.parameters())),
        _grads((ref_outs * w).sum(), list(ref.parameters())),
        strict=True,
    ):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


def test_layer_norm_lstm_follows_ba_et_al_section_3_1():
    """``gates = LN(W_ih x) + LN(W_hh h) + b``; ``c' = s(f) c + s(i) tanh(g)``; ``h' = s(o) tanh(LN(c'))``."""
    torch.manual_seed(1)
    cell = LayerNormLSTMCell(IN, H).double()
    with torch.no_grad():  # non-trivial gains and shifts
        for ln in (cell.ln_ih, cell.ln_hh, cell.ln_c):
            ln.weight.uniform_(0.5, 1.5)
            ln.bias.uniform_(-0.5, 0.5)
        cell.bias.uniform_(-0.5, 0.5)

    def ln(t, norm):  # LN(t) = gain * (t - mean) / sqrt(var + eps) + shift, over the features
        mean = t.mean(-1, keepdim=True)
        var = ((t - mean) ** 2).mean(-1, keepdim=True)
        return norm.weight * (t - mean) / torch.sqrt(var + norm.eps) + norm.bias

    xs = torch.randn(STEPS, B, IN, dtype=torch.float64)
    h = torch.randn(B, H, dtype=torch.float64)
    c = torch.randn(B, H, dtype=torch.float64)
    outs, last = _steps(cell, xs, LSTMState(h, c))
    ref = []
    for x in xs:
        gates = ln(x @ cell.weight_ih.T, cell.ln_ih) + ln(h @ cell.weight_hh.T, cell.ln_hh) + cell.bias
        i, f, g, o = gates.split(H, dim=1)  # the nn.LSTM gate order
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(ln(c, cell.ln_c))
        ref.append(h)
    ref = torch.stack(ref)
    torch.testing.assert_close(outs, ref, atol=1e-12, rtol=0)
    torch.testing.assert_close(last.c, c, atol=1e-12, rtol=0)
    params = list(cell.parameters())
    w = torch.randn_like(outs)
    for a, b in zip(_grads((outs * w).sum(), params), _grads((ref * w).sum(), params), strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


def test_minimal_gated_unit_follows_zhou_et_al():
    """``f = s(W_f x + U_f h + b_f)``; ``h~ = tanh(W_h x + U_h (f h) + b_h)``; ``h' = (1 - f) h + f h~``."""
    torch.manual_seed(2)
    cell = MinimalGatedCell(IN, H).double()
    W_f, W_h = cell.W.weight.split(H)  # W's rows: f, h
    b_f, b_h = cell.W.bias.split(H)
    U_f, U_h = cell.U_f.weight, cell.U_h.weight
    xs = torch.randn(STEPS, B, IN, dtype=torch.float64)
    h = torch.randn(B, H, dtype=torch.float64)
    outs, last = _steps(cell, xs, RNNState(h))
    ref = []
    for x in xs:
        f = torch.sigmoid(x @ W_f.T + h @ U_f.T + b_f)
        cand = torch.tanh(x @ W_h.T + (f * h) @ U_h.T + b_h)
        h = (1 - f) * h + f * cand
        ref.append(h)
    ref = torch.stack(ref)
    torch.testing.assert_close(outs, ref, atol=1e-12, rtol=0)
    torch.testing.assert_close(last.h, h, atol=1e-12, rtol=0)
    params = list(cell.parameters())
    w = torch.randn_like(outs)
    for a, b in zip(_grads((outs * w).sum(), params), _grads((ref * w).sum(), params), strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


@pytest.mark.parametrize("cls", [LSTMCell, GRUCell, LayerNormLSTMCell, MinimalGatedCell])
def test_the_initial_state_is_zeros_of_the_cells_state_type(cls):
    cell = cls(IN, H)
    state = cell.initial_state(B, device=torch.device("cpu"), dtype=torch.float64)
    assert type(state) is cls.state_type
    assert all(t.shape == (B, H) and t.dtype == torch.float64 and not t.any() for t in state)
