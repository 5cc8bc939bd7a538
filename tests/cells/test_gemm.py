"""nlp_lib.cells.gemm: oneDNN's float32 products compute torch's, forward and backward, and are
chosen only where they may run (float32 CPU tensors, nothing traced, the backend allowed)."""

import pytest
import torch

from nlp_lib.cells import gemm
from nlp_lib.models import Seq2Seq

onednn = pytest.mark.skipif(not gemm._onednn_works(), reason="this torch build has no working oneDNN linear")


@pytest.fixture
def backend():
    """Restore the process's backend choice after a test that sets it."""
    saved = list(gemm._choice)
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
