"""Sequence runner: parity with nn.LSTM / nn.GRU (weights copied), masking = one sequence alone."""

import pytest
import torch
from torch import nn

from nlp_lib.cells import GRUCell, LayerNormLSTMCell, LSTMCell, MinimalGatedCell
from nlp_lib.modules import SequenceRunner

B, T, IN, H = 5, 7, 6, 4
LENGTHS = torch.tensor([7, 3, 1, 5, 7])


def _runner(cell, layers=1, bidir=False, **kw):
    torch.manual_seed(0)
    return SequenceRunner(
        cell=cell, input_size=IN, hidden_size=H, num_layers=layers, bidirectional=bidir, **kw
    ).double()


def _copy_from(runner, ref):
    with torch.no_grad():
        for layer in range(runner.num_layers):
            for d in range(runner.directions):
                cell = runner.cells[layer * runner.directions + d]
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(cell, name).copy_(getattr(ref, name + sfx))


@pytest.mark.parametrize("cell, ref_cls", [(LSTMCell, nn.LSTM), (GRUCell, nn.GRU)], ids=["lstm", "gru"])
@pytest.mark.parametrize("layers, bidir", [(1, False), (2, True)], ids=["1layer", "2layer_bidir"])
@pytest.mark.parametrize("fused", [False, True], ids=["loop", "fused"])
def test_parity_with_torch_rnn_outputs_and_gradients(cell, ref_cls, layers, bidir, fused):
    torch.manual_seed(1)
    ref = ref_cls(IN, H, num_layers=layers, bidirectional=bidir, batch_first=True).double()
    runner = _runner(cell, layers, bidir, fused=fused)
    _copy_from(runner, ref)
    assert runner.is_fused == fused
    x = torch.randn(B, T, IN, dtype=torch.float64)
    packed = nn.utils.rnn.pack_padded_sequence(x, LENGTHS, batch_first=True, enforce_sorted=False)
    ref_out, ref_h = ref(packed)
    ref_out, _ = nn.utils.rnn.pad_packed_sequence(ref_out, batch_first=True, total_length=T)
    ref_h = ref_h[0] if isinstance(ref_h, tuple) else ref_h
    out = runner(x, LENGTHS)
    torch.testing.assert_close(out.outputs, ref_out, atol=1e-10, rtol=0)
    ref_last = torch.cat([ref_h[-runner.directions + d] for d in range(runner.directions)], dim=-1)
    torch.testing.assert_close(out.last, ref_last, atol=1e-10, rtol=0)
    w = torch.randn_like(ref_out)
    g_ref = torch.autograd.grad((ref_out * w).sum(), list(ref.parameters()))
    g = torch.autograd.grad((out.outputs * w).sum(), [p for c in runner.cells for p in c.parameters()])
    ours = {}
    for layer in range(layers):
        for d in range(runner.directions):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                ours[name + f"_l{layer}" + ("_reverse" if d else "")] = None
    named = dict(zip(ours, g, strict=True))  # cells' parameter order is weight_ih, weight_hh, bias_ih, bias_hh
    for (name, _), gr in zip(ref.named_parameters(), g_ref, strict=True):
        torch.testing.assert_close(named[name], gr, atol=1e-10, rtol=0)


@pytest.mark.parametrize("cell", [LSTMCell, GRUCell, LayerNormLSTMCell, MinimalGatedCell])
def test_masking_equals_running_each_sequence_alone(cell):
    runner = _runner(cell, layers=2, bidir=True)
    x = torch.randn(B, T, IN, dtype=torch.float64, requires_grad=True)
    out = runner(x, LENGTHS)
    loss = sum((out.outputs[b, : LENGTHS[b]] ** 2).sum() + out.last[b].sum() for b in range(B))
    (gx,) = torch.autograd.grad(loss, x)
    for b in range(B):
        n = int(LENGTHS[b])
        xb = x[b : b + 1, :n].detach().requires_grad_()
        alone = runner(xb)
        torch.testing.assert_close(out.outputs[b, :n], alone.outputs[0], atol=1e-10, rtol=0)
        assert out.outputs[b, n:].abs().max() == 0 if n < T else True
        torch.testing.assert_close(out.last[b], alone.last[0], atol=1e-10, rtol=0)
        (gb,) = torch.autograd.grad((alone.outputs**2).sum() + alone.last.sum(), xb)
        torch.testing.assert_close(gx[b, :n], gb[0], atol=1e-10, rtol=0)
        assert gx[b, n:].abs().max() == 0 if n < T else True


def test_recurrent_dropout_is_one_mask_per_sequence_and_off_in_eval():
    runner = _runner(LSTMCell, recurrent_dropout=0.5)
    x = torch.randn(B, T, IN, dtype=torch.float64)
    runner.eval()
    a, b = runner(x).outputs, runner(x).outputs
    torch.testing.assert_close(a, b)
    runner.train()
    torch.manual_seed(3)
    c = runner(x).outputs
    assert not torch.allclose(a, c)
    assert not runner.is_fused


@pytest.mark.integration
def test_compiled_step_equals_eager():
    eager = _runner(LSTMCell)
    compiled = _runner(LSTMCell, compile=True)
    compiled.load_state_dict(eager.state_dict())
    x = torch.randn(B, T, IN, dtype=torch.float64)
    torch.testing.assert_close(compiled(x, LENGTHS).outputs, eager(x, LENGTHS).outputs, atol=1e-10, rtol=0)


class _NoState(LSTMCell):
    def forward(self, x_proj, state):  # forgets to return its state
        return super().forward(x_proj, state)[0]


def test_a_cell_that_does_not_return_its_state_is_named():
    runner = SequenceRunner(cell=_NoState, input_size=3, hidden_size=4)
    with pytest.raises(TypeError, match=r"_NoState.forward must return \(output, new_state\), got Tensor"):
        runner(torch.randn(2, 5, 3))
