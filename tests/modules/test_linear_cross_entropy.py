"""linear_cross_entropy is F.cross_entropy(F.linear(h, W, b), y) without the logits: loss, gradients, argmax."""

import math

import pytest
import torch
import torch.nn.functional as F

from nlp_lib.modules.linear_cross_entropy import linear_cross_entropy, linear_top_log_probs


def _inputs(bias=True, vocab=300, shape=(4, 9), hidden=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(*shape, hidden, dtype=torch.float64, generator=g).requires_grad_()
    w = torch.randn(vocab, hidden, dtype=torch.float64, generator=g).requires_grad_()
    b = torch.randn(vocab, dtype=torch.float64, generator=g).requires_grad_() if bias else None
    y = torch.randint(0, vocab, shape, generator=g)
    return h, w, b, y


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 1.0])
@pytest.mark.parametrize("width", [None, 1, 7, 128, 299, 300, 1000])
def test_loss_gradients_and_argmax_equal_the_logits_way(bias, smoothing, width):
    h, w, b, y = _inputs(bias)
    y[0, 3:] = 0  # padding, left out
    y[1, 2] = 299  # the last class: the last slice's edge
    params = [h, w] + ([b] if bias else [])
    logits = F.linear(h, w, b)
    ref = F.cross_entropy(logits.reshape(-1, 300), y.reshape(-1), ignore_index=0, label_smoothing=smoothing)
    ref_grads = torch.autograd.grad(ref * 1.7, params)
    out = linear_cross_entropy(h, w, b, y, ignore_index=0, label_smoothing=smoothing, slice_width=width)
    grads = torch.autograd.grad(out.loss * 1.7, params)  # the incoming gradient scales what forward computed
    torch.testing.assert_close(out.loss, ref, rtol=0, atol=1e-12)
    for got, want in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    keep = y != 0
    assert torch.equal(out.target, y[keep])
    assert torch.equal(out.predicted, logits.argmax(-1)[keep])


def test_ties_go_to_the_lowest_class_across_slices():
    h = torch.ones(2, 1, dtype=torch.float64)
    w = torch.zeros(10, 1, dtype=torch.float64)
    w[[2, 7]] = 1.0  # classes 2 and 7 tie, in different slices of width 4
    out = linear_cross_entropy(h, w, None, torch.tensor([1, 3]), slice_width=4)
    assert out.predicted.tolist() == [2, 2]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_the_prediction_is_the_first_maximal_class_within_a_slice(dtype):
    """Rows whose maximum sits on a slice's first or last column, or several times in one slice."""
    torch.manual_seed(0)
    logits = torch.randn(6, 40).to(dtype)
    logits[0, 0] = logits[1, 15] = logits[2, 16] = 9.0  # first and last column of a 16-wide slice
    logits[3, [5, 9, 30]] = 9.0  # a tie inside a slice and one in a later slice
    logits[4] = 0.0  # every class ties
    logits[5, [17, 18]] = 2.0**-100  # tiny ties: still exact
    logits[5, :17] = logits[5, 19:] = -1.0
    h = torch.eye(6, dtype=dtype)[:, :6]
    w = torch.zeros(40, 6, dtype=dtype)
    w[:, :6] = logits.t()  # h @ w.T == logits
    out = linear_cross_entropy(h, w, None, torch.zeros(6, dtype=torch.long), slice_width=16)
    assert out.predicted.tolist() == [0, 15, 16, 5, 0, 17]


def test_a_weight_used_twice_accumulates_both_gradients():
    """A tied output layer (the target embedding) gets the loss's gradient added to the lookup's."""
    h, w, b, y = _inputs()

    def lookup():
        return F.embedding(torch.tensor([[1, 2]]), w).square().sum()

    ref = F.cross_entropy(F.linear(h, w, b).reshape(-1, 300), y.reshape(-1)) + lookup()
    want = torch.autograd.grad(ref, w)[0]
    got = torch.autograd.grad(linear_cross_entropy(h, w, b, y).loss + lookup(), w)[0]
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_without_gradients_only_the_loss_is_computed():
    h, w, b, y = _inputs()
    with torch.no_grad():
        out = linear_cross_entropy(h, w, b, y)
        ref = F.cross_entropy(F.linear(h, w, b).reshape(-1, 300), y.reshape(-1))
    assert not out.loss.requires_grad
    torch.testing.assert_close(out.loss, ref, rtol=0, atol=1e-12)


def test_only_the_inputs_that_need_a_gradient_get_one():
    h, w, b, y = _inputs()
    h = h.detach()
    out = linear_cross_entropy(h, w, b.detach(), y)
    (gw,) = torch.autograd.grad(out.loss, [w])
    torch.testing.assert_close(
        gw, torch.autograd.grad(F.cross_entropy(F.linear(h, w, b.detach()).reshape(-1, 300), y.reshape(-1)), w)[0]
    )


def test_float32_hidden_states_and_bfloat16_inputs():
    h, w, b, y = _inputs()
    h32, w32, b32 = (t.detach().float().requires_grad_() for t in (h, w, b))
    out = linear_cross_entropy(h32, w32, b32, y)
    ref = F.cross_entropy(F.linear(h32, w32, b32).reshape(-1, 300), y.reshape(-1))
    torch.testing.assert_close(out.loss, ref, rtol=1e-5, atol=1e-5)
    low = linear_cross_entropy(h32.detach().bfloat16(), w32, b32, y)  # autocast's output: computed in fp32
    assert low.loss.dtype == torch.float32 and math.isfinite(float(low.loss.detach()))


def test_no_kept_target_gives_nan_as_cross_entropy_does():
    h, w, b, y = _inputs()
    out = linear_cross_entropy(h, w, b, torch.zeros_like(y), ignore_index=0)
    assert math.isnan(float(out.loss)) and out.predicted.numel() == 0


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda h, w, b, y: (h, w, b, y[:, :3]), "do not match"),
        (lambda h, w, b, y: (h, w[:, :5], b, y), r"must be \[V, 16\]"),
        (lambda h, w, b, y: (h, w, b, y.clone().fill_(300)), r"target ids must be in \[0, 300\)"),
        (lambda h, w, b, y: (h, w, b, y.clone().fill_(-1)), r"target ids must be in \[0, 300\)"),
    ],
)
def test_bad_inputs_are_refused(change, message):
    with pytest.raises((ValueError, IndexError), match=message):
        linear_cross_entropy(*change(*_inputs()))


def test_label_smoothing_out_of_range_is_refused():
    with pytest.raises(ValueError, match="label_smoothing"):
        linear_cross_entropy(*_inputs(), label_smoothing=1.5)


@pytest.mark.parametrize("width", [None, 1, 7, 64, 1000])
@pytest.mark.parametrize("blocked", [None, 3, 299])
@pytest.mark.parametrize("count", [1, 10, 299, 300])
def test_top_log_probs_equal_log_softmax_then_topk(width, blocked, count):
    h, w, b, _ = _inputs(shape=(6,))
    with torch.no_grad():
        full = torch.log_softmax(F.linear(h, w, b), -1)
        if blocked is not None:
            full[:, blocked] = float("-inf")
        c = min(count, 300 - (blocked is not None))
        want, want_ids = full.topk(c, dim=1)
        got, ids = linear_top_log_probs(h, w, b, count, blocked=blocked, slice_width=width)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    assert torch.equal(ids, want_ids)


def test_top_log_probs_of_half_precision_rows_are_float32():
    h, w, b, _ = _inputs(shape=(3,))
    got, _ = linear_top_log_probs(h.bfloat16(), w.bfloat16(), b.bfloat16(), 4)
    assert got.dtype == torch.float32


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("width", [None, 7, 128])
def test_top_log_probs_with_a_bfloat16_weight_take_the_product_in_bfloat16(bias, width):
    """A bfloat16 copy of the weight: the product in bfloat16, bias and log-softmax in the rows' dtype."""
    h, w, b, _ = _inputs(bias, shape=(6,))
    h, w = h.detach(), w.detach()
    b = b.detach() if bias else None
    logits = (h.bfloat16() @ w.bfloat16().T).double() + (b if bias else 0)
    want, want_ids = torch.log_softmax(logits, -1).topk(5, dim=1)
    got, ids = linear_top_log_probs(h, w.bfloat16(), b, 5, slice_width=width)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, want, rtol=0, atol=1e-9)
    # rounded to bfloat16, logits tie often: the ids are a best set, in the order of their values
    torch.testing.assert_close(torch.log_softmax(logits, -1).gather(1, ids), want, rtol=0, atol=1e-9)
    assert (ids == want_ids).float().mean() > 0.5
    exact = torch.log_softmax(F.linear(h, w, b), -1).topk(5, dim=1).values
    assert 1e-6 < (got - exact).abs().max() < 0.5  # not the full-precision product, but near it


def test_top_log_probs_into_reused_buffers_equal_fresh_ones():
    """SliceBuffers: every slice and call writes its logits into the same memory; the results are
    those of fresh tensors, the blocked class too (set aside and put back in place)."""
    from nlp_lib.modules.linear_cross_entropy import SliceBuffers, linear_logits

    buffers = SliceBuffers()
    for rows, blocked, weight_dtype in [(6, None, None), (4, 5, None), (6, 200, torch.bfloat16), (9, None, None)]:
        h, w, b, _ = _inputs(shape=(rows,), seed=rows)
        h, w, b = h.detach(), w.detach(), b.detach()
        if weight_dtype is not None:
            w = w.to(weight_dtype)
        want = linear_top_log_probs(h, w, b, 5, blocked=blocked, slice_width=64)
        got = linear_top_log_probs(h, w, b, 5, blocked=blocked, slice_width=64, buffers=buffers)
        torch.testing.assert_close(got[0], want[0], rtol=0, atol=0)
        assert torch.equal(got[1], want[1]) and (blocked is None or not (got[1] == blocked).any())
    flat = buffers.get(1, 1, h, torch.float64)
    assert flat.untyped_storage().nbytes() == 9 * 64 * 8  # grown once to the largest slice, then reused
    logits = linear_logits(h, w, b, buffers=buffers)
    torch.testing.assert_close(logits, torch.addmm(b, h, w.T), rtol=0, atol=1e-12)


def test_under_bf16_autocast_the_loss_runs_in_the_weight_precision():
    """precision=bf16-mixed: the hidden state comes out of autocast in bfloat16; the loss and its
    gradients run in the weight's float32 (they crashed: autocast's products inside met the
    in-place gradient products outside it)."""
    g = torch.Generator().manual_seed(0)
    proj = torch.nn.Linear(16, 16)
    w = torch.randn(300, 16, generator=g).requires_grad_()
    b = torch.randn(300, generator=g).requires_grad_()
    x = torch.randn(12, 16, generator=g)
    y = torch.randint(0, 300, (12,), generator=g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = proj(x)
        assert h.dtype == torch.bfloat16
        out = linear_cross_entropy(h, w, b, y, label_smoothing=0.1, slice_width=64)
    out.loss.backward()
    ref = F.cross_entropy(F.linear(h.detach().float(), w.detach(), b.detach()), y, label_smoothing=0.1)
    assert out.loss.dtype == torch.float32
    torch.testing.assert_close(out.loss.detach(), ref, rtol=0, atol=1e-5)
    assert w.grad is not None and torch.isfinite(w.grad).all() and proj.weight.grad is not None
