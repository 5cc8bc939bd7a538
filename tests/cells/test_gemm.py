"""nlp_lib.cells.gemm: oneDNN's float32 products compute torch's, forward and backward, and are
chosen only where they may run (float32 CPU tensors, nothing traced, the backend allowed)."""

import pytest
import torch

from nlp_lib.cells import gemm
from nlp_lib.models import Seq2Seq

onednn = pytest.mark.skipif(not gemm._onednn_works(), reason="this torch build has no working oneDNN linear")


@pytest.fixture
def backend(monkeypatch):
    """Restore the process's backend choice after a test that sets it; products of every size on
    oneDNN (the tests' small shapes are under MIN_MACS)."""
    saved = list(gemm._choice)
    monkeypatch.setattr(gemm, "MIN_MACS", 0)
    yield gemm.set_cpu_backend
    gemm._choice[:] = saved


def _grads(fn, *tensors):
    out = fn(*tensors)
    (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    grads = [t.grad.clone() for t in tensors]
    for t in tensors:
        t.grad = None
    return out.detach(), grads


@onednn
@pytest.mark.parametrize("shape", [(5, 7), (3, 4, 7)], ids=["2d", "3d"])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_equals_torch_forward_and_backward(backend, shape, bias):
    torch.manual_seed(0)
    x = torch.randn(*shape, requires_grad=True)
    w = torch.randn(11, 7, requires_grad=True)
    b = torch.randn(11, requires_grad=True) if bias else None
    tensors = [t for t in (x, w, b) if t is not None]

    def run(*ts):
        return gemm.linear(ts[0], ts[1], ts[2] if bias else None)

    backend("torch")
    want, want_grads = _grads(run, *tensors)
    backend("onednn")
    assert gemm.uses_onednn(x, w, b)
    got, got_grads = _grads(run, *tensors)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    for g, r in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-5)


@onednn
def test_addmm_equals_torch_with_views(backend):
    torch.manual_seed(0)
    acc = torch.randn(6, 9, requires_grad=True)
    x = torch.randn(5, 6).t().requires_grad_()  # a transposed view, [6, 5]
    big = torch.randn(20, 5, requires_grad=True)

    def run(acc, x, big):
        return gemm.addmm(acc, x, big[3:12])  # a row slice as the weight

    backend("torch")
    want, want_grads = _grads(run, acc, x, big)
    backend("onednn")
    got, got_grads = _grads(run, acc, x, big)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    for g, r in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # without a graph: the same values
        torch.testing.assert_close(gemm.addmm(acc, x, big[3:12]), want, rtol=1e-5, atol=1e-5)
        out = torch.zeros(6, 9)
        assert gemm.mm(x, big[3:12].t(), out=out) is out
        torch.testing.assert_close(out, x @ big[3:12].t(), rtol=1e-5, atol=1e-5)


@onednn
def test_seq2seq_training_gradients_agree_across_backends(backend):
    torch.manual_seed(0)
    model = Seq2Seq(src_vocab_size=30, tgt_vocab_size=40, embedding_size=8, hidden_size=12, dropout=0.0)
    src, lengths = torch.randint(4, 30, (3, 6)), torch.tensor([6, 4, 2])
    tgt = torch.randint(4, 40, (3, 5))
    runs = []
    for name in ("torch", "onednn"):
        backend(name)
        model.zero_grad()
        out = model(src, lengths, tgt)
        torch.nn.functional.cross_entropy(out.logits.reshape(-1, 40), tgt.reshape(-1)).backward()
        runs.append((out.logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    (a, ga), (b, gb) = runs
    torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
    for name in ga:
        torch.testing.assert_close(gb[name], ga[name], rtol=1e-4, atol=1e-6, msg=name)


def test_what_never_runs_on_onednn(backend):
    backend("onednn")
    x32 = torch.randn(2, 3)
    assert not gemm.uses_onednn(x32.double())  # float64: torch's products (exact references)
    assert not gemm.uses_onednn(x32.bfloat16())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not gemm.uses_onednn(x32)
    seen = []

    def f(x):
        seen.append(gemm.uses_onednn(x))
        return gemm.linear(x, torch.ones(4, 3))

    torch.jit.trace(f, (x32,), check_trace=False)
    assert seen == [False]
    backend("torch")
    assert not gemm.uses_onednn(x32)
    torch.testing.assert_close(gemm.linear(x32, torch.ones(4, 3)), x32 @ torch.ones(3, 4), rtol=0, atol=0)


def test_backend_choice(backend, monkeypatch):
    with pytest.raises(ValueError, match="must be one of"):
        backend("mkl")
    gemm._choice.clear()
    monkeypatch.setenv("NLP_LIB_CPU_MATMUL", "fastest")
    with pytest.raises(ValueError, match="NLP_LIB_CPU_MATMUL='fastest'"):
        gemm.cpu_backend()
    gemm._choice.clear()
    monkeypatch.setenv("NLP_LIB_CPU_MATMUL", " Torch ")
    assert gemm.cpu_backend() == "torch"
    backend("auto")
    monkeypatch.setattr(gemm, "_cpu_vendor", lambda: "GenuineIntel")  # MKL serves Intel at full width
    assert gemm.cpu_backend() == "torch"
    monkeypatch.setattr(gemm, "_cpu_vendor", lambda: "AuthenticAMD")
    assert gemm.cpu_backend() == ("onednn" if gemm._onednn_works() else "torch")


def test_buckets_bound_the_shapes():
    assert [gemm.bucket(n) for n in (0, 1, 16, 17, 256, 257, 4096, 4097)] == [0, 1, 16, 32, 256, 320, 4096, 4352]
    assert len({gemm.bucket(n) for n in range(1, 3000)}) < 80  # kernels compiled per product form
    x = torch.randn(5, 3)
    assert gemm.pad_rows(x, 5) is x
    padded = gemm.pad_rows(torch.randn(17, 3))
    assert padded.shape == (32, 3) and not padded[17:].any()


@onednn
def test_padded_rows_change_no_result(backend, monkeypatch):
    """Every row count (padded to its bucket inside) gives torch's values and gradients, and the
    kernels see bucketed row counts only."""
    seen = []
    real = torch.ops.mkldnn._linear_pointwise

    class Spy:
        def __call__(self, x, *rest):
            seen.append(x.shape[0])
            return real(x, *rest)

        def binary(self, x, *rest):
            seen.append(x.shape[0])
            return real.binary(x, *rest)

    monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", Spy())
    torch.manual_seed(0)
    w = torch.randn(9, 6, requires_grad=True)
    b = torch.randn(9, requires_grad=True)
    for n in (1, 17, 30, 257):
        x = torch.randn(n, 6, requires_grad=True)
        acc = torch.randn(n, 9, requires_grad=True)
        results = []
        for name in ("torch", "onednn"):
            backend(name)
            out = gemm.linear(x, w, b) + gemm.addmm(acc, x, w)
            (out * torch.arange(out.numel()).view_as(out)).sum().backward()
            results.append([out.detach()] + [t.grad.clone() for t in (x, w, b, acc)])
            for t in (x, w, b, acc):
                t.grad = None
        for got, want in zip(results[1], results[0], strict=True):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    assert seen and all(rows == gemm.bucket(rows) for rows in seen)


@onednn
@pytest.mark.parametrize("rows", [1, 17, 300])
def test_sliced_loss_with_padded_rows_equals_torchs(backend, rows):
    from nlp_lib.modules.linear_cross_entropy import linear_cross_entropy

    torch.manual_seed(0)
    h = torch.randn(rows, 8, requires_grad=True)
    w = torch.randn(700, 8, requires_grad=True)
    b = torch.randn(700, requires_grad=True)
    y = torch.randint(0, 700, (rows,))
    runs = []
    for name in ("torch", "onednn"):
        backend(name)
        out = linear_cross_entropy(h, w, b, y, label_smoothing=0.1, slice_width=256)
        out.loss.backward()
        runs.append([out.loss.detach(), out.predicted, *(t.grad.clone() for t in (h, w, b))])
        for t in (h, w, b):
            t.grad = None
    assert runs[1][1].shape == (rows,) and torch.equal(runs[1][1], runs[0][1])
    for got, want in zip(runs[1], runs[0], strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


@onednn
def test_strided_operands_give_torchs_values(backend):
    """Column slices, steps and a strided bias are copied plain before the kernel sees them."""
    backend("onednn")
    torch.manual_seed(0)
    x = torch.randn(300, 40)[:, ::2]  # [300, 20], stride 2
    w_full = torch.randn(1024, 30)
    w = w_full[:, 5:25]  # a column slice (the decoder's split input projection)
    b = torch.randn(2048)[::2]  # a strided bias
    with torch.no_grad():
        got = gemm.linear(x, w, b)
        acc = torch.randn(300, 2048)[:, ::2]
        got_acc = gemm.addmm(acc, x, w)
    torch.testing.assert_close(got, torch.addmm(b, x, w.T), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(got_acc, torch.addmm(acc, x, w.T), rtol=1e-5, atol=1e-4)


def test_small_products_stay_on_torch(backend, monkeypatch):
    """Under MIN_MACS the differentiable products are torch's own, bit for bit."""
    monkeypatch.setattr(gemm, "MIN_MACS", 1 << 23)
    backend("onednn")
    torch.manual_seed(0)
    x, w, b = torch.randn(8, 16), torch.randn(32, 16), torch.randn(32)
    assert 8 * 16 * 32 < gemm.MIN_MACS
    assert torch.equal(gemm.linear(x, w, b), torch.nn.functional.linear(x, w, b))
    acc = torch.randn(8, 32)
    assert torch.equal(gemm.addmm(acc, x, w), torch.addmm(acc, x, w.T))


def test_func_transforms_and_forward_ad_work(backend):
    """vmap, grad and forward-mode AD see torch's operations (oneDNN's has no rule for them)."""
    backend("onednn")
    torch.manual_seed(0)
    w = torch.randn(1024, 256)
    x = torch.randn(4, 64, 256)
    want = torch.nn.functional.linear(x, w)
    got = torch.func.vmap(lambda r: gemm.linear(r, w))(x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-4)
    g = torch.func.grad(lambda r: gemm.linear(r, w).sum())(x[0])
    torch.testing.assert_close(g, w.sum(0).expand(64, -1), rtol=1e-5, atol=1e-4)
    import torch.autograd.forward_ad as fwad

    tangent = torch.randn(64, 256)
    with fwad.dual_level():
        out = gemm.linear(fwad.make_dual(x[0], tangent), w)
        jvp = fwad.unpack_dual(out).tangent
    assert jvp is not None
    torch.testing.assert_close(jvp, tangent @ w.T, rtol=1e-5, atol=1e-4)


# ---------------------------------------------------------------- found by the hostile review


@onednn
def test_second_derivatives_match_torchs(backend):
    """A backward that builds a graph (Hessian-vector products) is differentiable, not zero."""
    torch.manual_seed(0)
    x = torch.randn(40, 64)
    w = torch.randn(96, 64, requires_grad=True)
    v = torch.randn(96, 64)
    hvps = []
    for name in ("torch", "onednn"):
        backend(name)
        (g,) = torch.autograd.grad(gemm.linear(x, w).tanh().sum(), w, create_graph=True)
        (hv,) = torch.autograd.grad((g * v).sum(), w)
        hvps.append(hv)
    assert hvps[0].abs().sum() > 0
    torch.testing.assert_close(hvps[1], hvps[0], rtol=1e-4, atol=1e-4)


@onednn
def test_broadcast_bias_and_accumulator_match_torchs(backend):
    backend("onednn")
    torch.manual_seed(0)
    x, w = torch.randn(40, 64), torch.randn(96, 64)
    for b in (torch.tensor(1.5), torch.randn(1)):
        torch.testing.assert_close(gemm.linear(x, w, b), torch.nn.functional.linear(x, w, b), rtol=1e-5, atol=1e-4)
    for acc in (torch.randn(1, 96), torch.randn(96)):
        torch.testing.assert_close(gemm.addmm(acc, x, w), torch.addmm(acc, x, w.T), rtol=1e-5, atol=1e-4)


@onednn
def test_results_may_be_edited_in_place(backend):
    backend("onednn")
    torch.manual_seed(0)
    x = torch.randn(40, 64, requires_grad=True)  # 40 rows: padded to 48 inside
    w = torch.randn(96, 64, requires_grad=True)
    y = gemm.linear(x, w)
    y.relu_()
    y.sum().backward()
    assert x.grad is not None and w.grad is not None
    x0 = x.detach() * 1
    x0.requires_grad_()
    z = x0 * 1
    out = gemm.linear(z, w.detach())  # w frozen: x's value is not kept for the backward
    z.mul_(2)
    out.sum().backward()
    torch.testing.assert_close(x0.grad, w.detach().sum(0).expand(40, -1), rtol=1e-5, atol=1e-4)


def test_seq2seq_layers_keep_module_hooks(backend):
    backend("onednn")
    model = Seq2Seq(src_vocab_size=30, tgt_vocab_size=40, embedding_size=8, hidden_size=12)
    calls = []
    model.combine.register_forward_hook(lambda *a: calls.append("combine"))
    model.attention.W_a.register_forward_hook(lambda *a: calls.append("keys"))
    model(torch.randint(4, 30, (2, 5)), torch.tensor([5, 3]), torch.randint(4, 40, (2, 4)))
    assert calls.count("combine") == 4 and calls.count("keys") == 1


def test_compiled_and_fx_traced_cells_see_torchs_operations(backend):
    from nlp_lib.cells import LSTMCell

    backend("onednn")
    cell = LSTMCell(64, 128)
    state = cell.initial_state(64, device=torch.device("cpu"), dtype=torch.float32)
    x = torch.randn(64, 64)
    step = torch.compile(lambda x, s: cell(cell.project(x), s), backend="eager", fullgraph=True)
    out, _ = step(x, state)  # fullgraph: no graph break
    torch.testing.assert_close(out, cell(cell.project(x), state)[0], rtol=1e-5, atol=1e-5)
    torch.fx.symbolic_trace(cell)


def test_a_check_that_cannot_run_now_is_tried_again(backend, monkeypatch):
    """The one-time check of oneDNN, first reached inside a mode it cannot run in, does not turn
    oneDNN off for the rest of the process."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    monkeypatch.setattr(gemm, "_WORKS", [])
    with FakeTensorMode():
        assert not gemm._onednn_works()
    assert gemm._onednn_works() == bool(torch.backends.mkldnn.is_available()) or not gemm._WORKS[0]
