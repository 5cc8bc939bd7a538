"""nlp_lib.cells.ops.linear: the oneDNN path equals F.linear (values and gradients), falls back where it must."""

import pytest
import torch
from torch import nn

from nlp_lib.cells import GRUCell, LayerNormLSTMCell, LSTMCell, MinimalGatedCell, ops
from nlp_lib.modules import SequenceRunner

needs_onednn = pytest.mark.skipif(not ops._onednn_works(), reason="this torch has no usable oneDNN linear")


@pytest.fixture
def fast(monkeypatch):
    """The oneDNN path on for every size; yields a list that records each call that took it."""
    monkeypatch.setattr(ops, "_ENABLED", True)
    monkeypatch.setattr(ops, "MIN_MACS", 0)
    calls = []
    real = ops._OneDNNLinear.apply

    def spy(*args):
        calls.append(args[0].shape)
        return real(*args)

    monkeypatch.setattr(ops._OneDNNLinear, "apply", spy)
    return calls


def _grads(out, inputs, seed=0):
    w = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed))
    return torch.autograd.grad((out * w).sum(), inputs)


@needs_onednn
@pytest.mark.parametrize("shape", [(6, 5), (3, 4, 5)], ids=["2d", "3d"])
@pytest.mark.parametrize("bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("add", [False, True], ids=["noadd", "add"])
@pytest.mark.parametrize("scoped", [False, True], ids=["unscoped", "scoped"])
def test_linear_equals_f_linear_values_and_gradients(fast, shape, bias, add, scoped):
    torch.manual_seed(0)
    x = torch.randn(shape, requires_grad=True)
    w = torch.randn(7, 5, requires_grad=True)
    b = torch.randn(7, requires_grad=True) if bias else None
    a = torch.randn(*shape[:-1], 7, requires_grad=True) if add else None
    inputs = [t for t in (x, w, b, a) if t is not None]
    ref = nn.functional.linear(x, w, b) + (a if add else 0)
    g_ref = _grads(ref, inputs)
    with ops.packed_weights() if scoped else torch.enable_grad():
        outs = [ops.linear(x, w, b, add=a) for _ in range(3)]  # scoped: the 2nd and 3rd use a packed weight
    assert len(fast) == 3
    for out in outs:
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
        for got, want in zip(_grads(out, inputs), g_ref, strict=True):
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@needs_onednn
def test_a_weight_changed_in_place_inside_a_scope_is_packed_again(fast):
    x = torch.randn(4, 5)
    w = torch.randn(6, 5)
    with ops.packed_weights():
        ops.linear(x, w)
        ops.linear(x, w)  # packed now
        with torch.no_grad():
            w.mul_(2.0)
        torch.testing.assert_close(ops.linear(x, w), x @ w.t(), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ops.linear(x, w), x @ w.t(), atol=1e-5, rtol=1e-5)


@needs_onednn
def test_double_backward_is_refused_loudly(fast):
    x = torch.randn(4, 5, requires_grad=True)
    w = torch.randn(6, 5, requires_grad=True)
    (gx,) = torch.autograd.grad(ops.linear(x, w).pow(2).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|differentiate"):
        gx.sum().backward()


def test_falls_back_to_f_linear_where_onednn_does_not_apply(fast, monkeypatch):
    x, w, b = torch.randn(4, 5), torch.randn(6, 5), torch.randn(6)
    out = ops.linear(x.double(), w.double(), b.double())  # float64
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, nn.functional.linear(x.double(), w.double(), b.double()))
    with torch.autocast("cpu", dtype=torch.bfloat16):  # autocast keeps F.linear's low-precision semantics
        assert ops.linear(x, w, b).dtype == torch.bfloat16
    row = torch.randn(6)  # an add that broadcasts
    torch.testing.assert_close(ops.linear(x, w, add=row), x @ w.t() + row)
    traced = torch.jit.trace(lambda x: ops.linear(x, w, b), (x,), check_trace=False)
    torch.testing.assert_close(traced(x), nn.functional.linear(x, w, b))
    monkeypatch.setattr(ops, "_ENABLED", False)
    ops.linear(x, w, b)
    assert fast == []  # none of these took the oneDNN path
    monkeypatch.setattr(ops, "_ENABLED", True)
    monkeypatch.setattr(ops, "MIN_MACS", 10**9)
    ops.linear(x, w, b)  # too small a product to be worth oneDNN's fixed cost
    assert fast == []


def test_nlp_lib_fast_cpu_variable_decides_the_default(monkeypatch):
    for value, want in [("0", False), ("off", False), ("1", True)]:
        monkeypatch.setenv("NLP_LIB_FAST_CPU", value)
        assert ops._default_enabled() is want


def _copy_lstm(runner, ref):
    with torch.no_grad():
        for layer in range(runner.num_layers):
            for d in range(runner.directions):
                cell = runner.cells[layer * runner.directions + d]
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(cell, name).copy_(getattr(ref, name + sfx))


@needs_onednn
@pytest.mark.parametrize("cell, ref_cls", [(LSTMCell, nn.LSTM), (GRUCell, nn.GRU)], ids=["lstm", "gru"])
def test_runner_on_onednn_matches_torch_rnn_in_float32(fast, cell, ref_cls):
    """The issue's parity bar (1e-5) on the fast path: 2 layers, bidirectional, padded batch."""
    torch.manual_seed(1)
    lengths = torch.tensor([7, 3, 1, 5, 7])
    ref = ref_cls(6, 8, num_layers=2, bidirectional=True, batch_first=True)
    runner = SequenceRunner(cell=cell, input_size=6, hidden_size=8, num_layers=2, bidirectional=True)
    _copy_lstm(runner, ref)
    x = torch.randn(5, 7, 6)
    packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    ref_out, _ = nn.utils.rnn.pad_packed_sequence(ref(packed)[0], batch_first=True, total_length=7)
    out = runner(x, lengths).outputs
    assert len(fast) >= 2 * 2 * 7  # every layer's and direction's steps went through oneDNN
    torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=1e-5)
    mine = [p for c in runner.cells for p in c.parameters()]
    theirs = [getattr(ref, n + f"_l{layer}" + s) for layer in range(2) for s in ("", "_reverse") for n in
              ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]  # fmt: skip
    for got, want in zip(_grads(out, mine), _grads(ref_out, theirs), strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@needs_onednn
@pytest.mark.parametrize("cell", [LSTMCell, GRUCell, LayerNormLSTMCell, MinimalGatedCell])
def test_every_built_in_cell_gives_the_same_results_on_either_path(fast, monkeypatch, cell):
    torch.manual_seed(2)
    runner = SequenceRunner(cell=cell, input_size=6, hidden_size=8, bidirectional=True)
    x = torch.randn(5, 7, 6, requires_grad=True)
    lengths = torch.tensor([7, 3, 1, 5, 7])
    params = [x, *runner.parameters()]
    out = runner(x, lengths)
    assert fast  # took the oneDNN path
    grads = _grads(out.outputs, params)
    monkeypatch.setattr(ops, "_ENABLED", False)
    ref = runner(x, lengths)
    torch.testing.assert_close(out.outputs, ref.outputs, atol=1e-5, rtol=1e-5)
    for got, want in zip(grads, _grads(ref.outputs, params), strict=True):  # float32 sums in another order
        torch.testing.assert_close(got, want, atol=5e-5, rtol=1e-4)
