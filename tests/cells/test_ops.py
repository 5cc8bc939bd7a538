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


@needs_onednn
def test_a_bias_that_is_not_one_contiguous_vector_gives_f_linears_results(fast):
    x = torch.randn(6, 5, requires_grad=True)
    w = torch.randn(7, 5, requires_grad=True)
    column = torch.randn(7, 2, requires_grad=True)
    scalar = torch.tensor(0.3, requires_grad=True)
    one = torch.randn(1, requires_grad=True)
    for bias, leaf in [(column[:, 0], column), (scalar.expand(7), scalar), (one, one)]:  # strided, expanded, [1]
        want = nn.functional.linear(x, w, bias)
        got = ops.linear(x, w, bias)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
        for a, b in zip(_grads(got, [x, w, leaf]), _grads(want, [x, w, leaf]), strict=True):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert len(fast) == 2  # the [1] bias broadcasts: F.linear's business


@needs_onednn
def test_only_what_the_backward_needs_is_saved(fast):
    """As with F.linear, a tensor whose partner needs no gradient may change after the forward."""
    w = nn.Parameter(torch.randn(7, 5))
    x = torch.randn(6, 5)
    y = ops.linear(x, w)  # x needs no gradient: the weight is not saved
    with torch.no_grad():
        w.mul_(0.9)
    y.sum().backward()
    torch.testing.assert_close(w.grad, torch.ones(7, 6) @ x)
    x = torch.randn(6, 5, requires_grad=True)
    frozen = torch.randn(7, 5)
    y = ops.linear(x, frozen)  # the weight needs no gradient: x is not saved
    with torch.no_grad():
        x.mul_(0.5)
    y.sum().backward()
    torch.testing.assert_close(x.grad, torch.ones(6, 7) @ frozen)
    assert len(fast) == 2


@needs_onednn
def test_packing_happens_once_per_recurrent_weight_and_direction_of_the_pass(fast, monkeypatch):
    packed = []
    real = ops._pack
    monkeypatch.setattr(ops, "_pack", lambda w: packed.append(tuple(w.shape)) or real(w))
    runner = SequenceRunner(cell=LSTMCell, input_size=6, hidden_size=8, num_layers=2, bidirectional=True)
    out = runner(torch.randn(3, 5, 6), torch.tensor([5, 2, 4]))
    assert packed == [(32, 8)] * 4  # each cell's recurrent weight, at its second step; input weights never
    out.outputs.sum().backward()
    assert packed[4:] == [(8, 32)] * 4  # and its transpose, once, for the backward pass


@needs_onednn
def test_torch_func_transforms_and_forward_ad_fall_back(fast):
    from torch.func import functional_call, grad

    runner = SequenceRunner(cell=LSTMCell, input_size=6, hidden_size=8)
    x = torch.randn(3, 5, 6)
    params = dict(runner.named_parameters())
    g = grad(lambda p: functional_call(runner, p, (x,)).outputs.pow(2).mean())(params)
    want = torch.autograd.grad(runner(x).outputs.pow(2).mean(), list(params.values()))
    for a, b in zip(g.values(), want, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    import torch.autograd.forward_ad as fwad

    with fwad.dual_level():
        out = runner(fwad.make_dual(x, torch.ones_like(x))).outputs
        assert fwad.unpack_dual(out).tangent is not None


@needs_onednn
def test_seq2seq_training_and_decoding_on_the_fast_path_equal_the_plain_path(fast, monkeypatch):
    from nlp_lib.models import Seq2Seq
    from nlp_lib.models.decoding import beam_search, greedy

    torch.manual_seed(0)
    model = Seq2Seq(src_vocab_size=20, tgt_vocab_size=15, embedding_size=8, hidden_size=16, dropout=0.0)
    src = torch.randint(4, 20, (4, 6))
    lengths = torch.tensor([6, 3, 5, 1])
    tgt = torch.randint(4, 15, (4, 5))
    params = list(model.parameters())

    def run():
        logits = model(src, lengths, tgt).logits
        model.eval()
        decoded = greedy(model, src, lengths, max_length=8), beam_search(model, src, lengths, beam_size=3)
        model.train()
        return logits, torch.autograd.grad(logits.pow(2).sum(), params), decoded

    logits, grads, (gr, beams) = run()
    assert len(fast) > 20  # the decoder's steps went through oneDNN
    monkeypatch.setattr(ops, "_ENABLED", False)
    ref_logits, ref_grads, (ref_gr, ref_beams) = run()
    torch.testing.assert_close(logits, ref_logits, atol=1e-5, rtol=1e-5)
    for a, b in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b, atol=5e-5, rtol=1e-4)
    assert gr == ref_gr
    assert [[h.tokens for h in hs] for hs in beams] == [[h.tokens for h in hs] for hs in ref_beams]


@needs_onednn
def test_a_scope_does_not_keep_weights_made_afresh_alive(fast):
    import gc
    import weakref

    x = torch.randn(4, 5)
    refs = []
    with ops.packed_weights():
        for _ in range(5):
            w = torch.randn(6, 5) * 2.0  # a new weight each step (e.g. a weight-normed one)
            refs.append(weakref.ref(w))
            ops.linear(x, w)
        del w
        gc.collect()
        assert sum(r() is not None for r in refs) == 0
        assert ops._scopes()[-1] == {}  # and their entries went with them
