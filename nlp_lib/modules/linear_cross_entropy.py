"""Output layer and cross-entropy in one pass over vocabulary slices: the ``[N, V]`` logits never exist whole.

``linear_cross_entropy(h, W, b, target)`` equals
``F.cross_entropy(F.linear(h, W, b), target, ignore_index=, label_smoothing=)`` (mean over the kept
targets) and its gradients, to floating-point rounding. It is how the seq2seq loss is computed in
training: the output layer of a translation model (``V`` ~ 20,000 words) is most of a step's work,
and done as one ``[N, H] x [H, V]`` product it runs at a fraction of the machine's speed on a CPU (a
fresh 60 MB result is page-faulted in, and the log-softmax and its gradient each stream it again).
Here the vocabulary is cut into column slices small enough to stay in cache:

1. per slice, while it is in cache: ``z = h W_s^T + b_s``, the gold logit, the slice's max and
   argmax, and ``exp(z - max)`` in place (kept for step 2); the row's log-sum-exp from the slices'
   terms, and (label smoothing) the row's mean logit as ``h . mean(W) + mean(b)``;
2. per slice, in place: ``p = (softmax(z) - (1 - eps) [v = y]) / n``, the gradient of the mean
   loss with respect to ``z`` but for the constant ``-eps / (V n)``; then ``dh += p W_s``,
   ``dW_s = p^T h``, ``db_s = sum p``; the constant's share is taken off the three results at the
   end (rank-one terms), which saves a pass over the logits.

The gradients are computed in the forward pass (when any input needs one) and scaled by the
incoming gradient in the backward pass, so autograd never holds the logits. Double backward is
not supported. The predicted class (argmax, ties to the lowest id) comes out of the same pass.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from nlp_lib.cells import gemm

__all__ = [
    "LinearCrossEntropy",
    "SliceBuffers",
    "linear_cross_entropy",
    "linear_logits",
    "linear_top_log_probs",
    "slice_width",
]


class LinearCrossEntropy(NamedTuple):
    """``loss`` (mean over kept rows, a scalar), ``predicted`` class per kept row, ``target`` per kept row."""

    loss: Tensor
    predicted: Tensor
    target: Tensor


def slice_width(rows: int, vocab: int, device: torch.device) -> int:
    """Vocabulary columns per slice for ``rows`` rows: ~1M logits (4 MB, cache-sized) on CPU, whole on a GPU.
    A multiple of 256 (odd widths ran up to 25% slower in MKL's products here)."""
    if device.type != "cpu":
        return vocab if rows * vocab <= 2**28 else max(256, 2**28 // max(rows, 1))
    return min(vocab, max(256, (2**20 // max(rows, 1)) // 256 * 256))


_width = slice_width  # linear_cross_entropy's argument of that name shadows it there


def _log_sum_exp(maxes: list[Tensor], sums: list[Tensor]) -> tuple[Tensor, Tensor]:
    """A row's log-sum-exp from its slices' ``max`` and ``sum(exp(z - max))`` (``[R, 1]`` each), and
    the index of the slice holding the row's max: ``(lse [R, 1], slice [R, 1])``."""
    top = torch.cat(maxes, 1).max(1, keepdim=True)
    lse = top.values + torch.log(sum(e * torch.exp(m - top.values) for e, m in zip(sums, maxes, strict=True)))
    return lse, top.indices


class _FirstMax:
    """The column of each row's first zero in ``d = z - max(z)`` (``<= 0``): its argmax, ties to the lowest.

    On a CPU ``max(dim)`` with indices runs ~15x slower than ``amax`` (a scalar loop), and a
    comparison writing booleans ~7x slower than float arithmetic; this finds the index with two
    vectorised float passes instead: ``key = d * 2^120 - j`` is exactly ``-j`` where ``d == 0``, and
    below ``-width`` wherever ``d != 0`` (unless ``|d| < width * 2^-120``, a tie at float32
    precision), so ``-amax(key)`` is the first maximal column.
    """

    SCALE = 2.0**120

    @staticmethod
    def applies(h: Tensor) -> bool:
        """On a CPU, in float32 or float64 (half precision cannot hold ``2^120`` or every column index)."""
        return h.device.type == "cpu" and h.dtype in (torch.float32, torch.float64)

    def __init__(self, rows: int, width: int, like: Tensor) -> None:
        self.neg_col = -torch.arange(width, dtype=like.dtype, device=like.device)
        self.key = like.new_empty(rows * width)

    def __call__(self, d: Tensor) -> Tensor:
        rows, cols = d.shape
        key = self.key[: rows * cols].view(rows, cols)
        torch.add(self.neg_col[:cols], d, alpha=self.SCALE, out=key)
        return key.amax(1, keepdim=True).neg_().long()


class _Function(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, h: Tensor, weight: Tensor, bias: Tensor | None, target: Tensor, smoothing: float, width: int
    ) -> tuple[Tensor, Tensor]:
        n, vocab = h.shape[0], weight.shape[0]
        need = ctx.needs_input_grad
        grads = need[0] or need[1] or (bias is not None and need[2])
        if gemm.runs_onednn(h, weight[:width], bias) and gemm.bucket(n) != n:
            # oneDNN compiles a kernel per row count: rows padded to a bucket (zero states, target -1:
            # no gold logit, no gradient); the loss, the bias gradient and dh read the first n rows
            h = gemm.pad_rows(h)
            target = torch.cat([target, target.new_full((h.shape[0] - n,), -1)])
        rows = h.shape[0]
        col = target.unsqueeze(1)
        # pass 1, per slice while it is in cache: its logits, the gold logit, the slice's max and
        # argmax, and its softmax numerators exp(z - max) in place (kept for pass 2)
        slices, maxes, argmaxes, sums = [], [], [], []
        gold = h.new_zeros(rows, 1)
        first_max = _FirstMax(rows, width, h) if _FirstMax.applies(h) else None
        for s in range(0, vocab, width):
            w = weight[s : s + width]
            z = gemm.linear(h, w, None if bias is None else bias[s : s + width])  # no graph: inside a Function
            inside = (col >= s) & (col < s + z.shape[1])
            gold += torch.where(inside, z.gather(1, (col - s).clamp(0, z.shape[1] - 1)), 0.0)
            if first_max is None:
                m, a = z.max(1, keepdim=True)
                z.sub_(m)
            else:
                m = z.amax(1, keepdim=True)
                a = first_max(z.sub_(m))
            maxes.append(m)
            argmaxes.append(a + s)
            sums.append(z.exp_().sum(1, keepdim=True))
            slices.append(z)
        lse, top_slice = _log_sum_exp(maxes, sums)
        predicted = torch.cat(argmaxes, 1).gather(1, top_slice).squeeze(1)[:n]  # first slice holding the max
        loss = (1.0 - smoothing) * (lse - gold)[:n].sum()
        if smoothing:  # the mean logit of a row, h . mean(W) + mean(b), without another pass over the logits
            wsum = weight.sum(0)
            zsum = h[:n] @ wsum + (0.0 if bias is None else bias.sum())
            loss = loss + smoothing * (lse[:n].squeeze(1) - zsum / vocab).sum()
        loss = loss / n
        dh = torch.zeros_like(h) if grads and need[0] else None
        dw = torch.empty_like(weight) if grads and need[1] else None
        db = torch.empty_like(bias) if grads and bias is not None and need[2] else None
        if grads:
            # pass 2, per slice: dL/dz = (softmax - (1 - eps) [v = y] - eps / V) / n, in place, then
            # its products. The constant eps / (V n) is left out of the slice and taken off the
            # results afterwards (rank-one terms): one pass over the logits less.
            const = smoothing / (vocab * n) if n else 0.0
            for i, z in enumerate(slices):
                s, w = i * width, z.shape[1]
                inside = (col >= s) & (col < s + w)
                p = z.mul_(torch.exp(maxes[i] - lse).div_(n))
                p.scatter_add_(1, (col - s).clamp(0, w - 1), inside.to(p.dtype) * (-(1.0 - smoothing) / max(n, 1)))
                if dh is not None:
                    dh = gemm.linear_add(dh, p, weight[s : s + w].T)
                if dw is not None:
                    gemm.mm(p.T, h, out=dw[s : s + w])
                if db is not None:
                    db[s : s + w] = p[:n].sum(0)
                slices[i] = None  # type: ignore[call-overload]  # free each slice once used
            if const:
                if dh is not None:
                    dh.sub_(const * wsum)
                if dw is not None:
                    dw.sub_(const * h.sum(0))
                if db is not None:
                    db.sub_(const * n)
        if dh is not None:
            dh = dh[:n]  # the padding's rows (oneDNN's buckets) are no input's
        ctx.save_for_backward(*(t if t is not None else torch.empty(0) for t in (dh, dw, db)))
        ctx.has = (dh is not None, dw is not None, db is not None)
        ctx.mark_non_differentiable(predicted)
        return loss, predicted

    @staticmethod
    def backward(ctx: Any, grad_loss: Tensor, _grad_predicted: Any) -> tuple[Tensor | None, ...]:
        saved = ctx.saved_tensors
        out = tuple(g * grad_loss if has else None for g, has in zip(saved, ctx.has, strict=True))
        return (*out, None, None, None)


def linear_cross_entropy(
    hidden: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    target: Tensor,
    *,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    slice_width: int | None = None,
) -> LinearCrossEntropy:
    """Cross-entropy of ``hidden @ weight.T + bias`` against ``target``, without the whole logits.

    Args:
        hidden: ``[..., H]`` inputs of the output layer.
        weight: ``[V, H]`` (an ``nn.Linear``'s weight, or a tied embedding).
        bias: ``[V]`` or ``None``.
        target: ``[...]`` class ids (the shape of ``hidden`` without its last dimension).
        ignore_index: Targets equal to it are left out (padding), as in ``F.cross_entropy``.
        label_smoothing: As in ``F.cross_entropy``: ``eps`` of the target mass spread evenly over ``V``.
        slice_width: Vocabulary columns per slice (default: :func:`slice_width`).

    Returns:
        :class:`LinearCrossEntropy`: the mean loss over the kept rows, and the argmax class and the
        target of each kept row (for accuracy). With no kept row the loss is ``nan``, as
        ``F.cross_entropy`` gives.
    """
    if hidden.shape[:-1] != target.shape:
        raise ValueError(f"hidden {tuple(hidden.shape)} and target {tuple(target.shape)} do not match")
    if weight.dim() != 2 or weight.shape[1] != hidden.shape[-1]:
        raise ValueError(f"weight {tuple(weight.shape)} must be [V, {hidden.shape[-1]}]")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
    h, y = hidden.reshape(-1, hidden.shape[-1]), target.reshape(-1)
    if ignore_index is not None:
        keep = y != ignore_index
        h, y = h[keep], y[keep]
    if h.dtype != weight.dtype:  # e.g. bf16 autocast: the loss is computed in the weight's precision
        h = h.to(weight.dtype)
    vocab = weight.shape[0]
    if y.device.type == "cpu":
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= vocab):
            raise IndexError(f"target ids must be in [0, {vocab}), got {int(y.min())}..{int(y.max())}")
    else:
        torch._assert_async(((y >= 0) & (y < vocab)).all())
    width = slice_width or _width(h.shape[0], weight.shape[0], h.device)
    # Under autocast the products inside would run in its lower dtype while the in-place gradient
    # products (addmm_) would not, and the two would not multiply: the loss runs as a whole in the
    # weight's precision, as F.cross_entropy runs in float32 under autocast.
    with torch.autocast(h.device.type, enabled=False):
        loss, predicted = _Function.apply(h, weight, bias, y, float(label_smoothing), int(width))
    return LinearCrossEntropy(loss, predicted, y)


class SliceBuffers:
    """Scratch memory for the vocabulary slices' logits, reused by every slice and every call.

    A decoding loop makes one and passes it to :func:`linear_top_log_probs` at every step. On a CPU a
    fresh slice of logits (``[R, width]``, ~4 MB) is served by new pages that the product then
    faults in, one by one: in beam search that cost more than the product itself (4.5 ms against
    3.8 ms a slice, AMD EPYC). Views of one flat tensor per dtype, grown when a call needs more,
    are faulted in once.
    """

    def __init__(self) -> None:
        self._flat: dict[torch.dtype, Tensor] = {}

    def get(self, rows: int, cols: int, like: Tensor, dtype: torch.dtype) -> Tensor:
        """A ``[rows, cols]`` tensor of ``dtype`` on ``like``'s device, its values undefined."""
        flat = self._flat.get(dtype)
        if flat is None or flat.numel() < rows * cols or flat.device != like.device:
            flat = self._flat[dtype] = torch.empty(rows * cols, dtype=dtype, device=like.device)
        return flat[: rows * cols].view(rows, cols)


def _slice_logits(
    hidden: Tensor, low: Tensor | None, w: Tensor, b: Tensor | None, buffers: SliceBuffers | None
) -> Tensor:
    """``hidden @ w.T + b`` for one vocabulary slice, in ``hidden``'s dtype; the product in ``w``'s
    dtype when ``low`` (``hidden`` cast to it) is given; into ``buffers`` when given."""
    x = hidden if low is None else low
    rows, n = x.shape[0], w.shape[0]
    if gemm.runs_onednn(x, w, b):  # oneDNN writes a tensor of its own, the bias added in the product
        return gemm.linear(x, w, b)
    z = torch.mm(x, w.T, out=None if buffers is None else buffers.get(rows, n, x, x.dtype))
    if z.dtype != hidden.dtype:  # a lower-precision product: the rest in the hidden state's dtype
        z = z.to(hidden.dtype) if buffers is None else buffers.get(rows, n, hidden, hidden.dtype).copy_(z)
    return z if b is None else z.add_(b)  # the bias after the product: its dtype may differ (autocast)


def linear_logits(
    hidden: Tensor, weight: Tensor, bias: Tensor | None, *, buffers: SliceBuffers | None = None
) -> Tensor:
    """``hidden @ weight.T + bias`` in ``hidden``'s dtype, the product in ``weight``'s (a bfloat16
    copy, say), into ``buffers``' memory when given (the result is then overwritten by the next use)."""
    low = hidden.to(weight.dtype) if weight.dtype != hidden.dtype else None
    return _slice_logits(hidden, low, weight, bias, buffers)


def linear_top_log_probs(
    hidden: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    count: int,
    *,
    blocked: int | None = None,
    slice_width: int | None = None,
    buffers: SliceBuffers | None = None,
) -> tuple[Tensor, Tensor]:
    """The ``count`` best next tokens of each row under ``log_softmax(hidden @ weight.T + bias)``, by slices.

    What beam search needs from the output layer, without the ``[R, V]`` log-probabilities: per
    slice the top ``count`` logits and the terms of the row's log-sum-exp; then the best ``count``
    of the slices' candidates, minus the log-sum-exp. The same values as ``log_softmax(...).topk(count)``
    to float rounding. ``blocked``: a class id that is never among the results (its probability still
    counts in the normalisation, as setting its log-probability to ``-inf`` after ``log_softmax`` does).
    ``slice_width``: as in :func:`linear_cross_entropy`. A ``weight`` of another dtype than ``hidden``
    (a ``bfloat16`` copy, say) runs the product in the weight's dtype; the bias, the log-sum-exp and
    the results stay in the hidden state's dtype. ``buffers``: scratch memory for the slices'
    logits, kept across calls (:class:`SliceBuffers`); without it each slice allocates its own.

    Returns:
        ``(log_probs [R, c], ids [R, c])``, best first, ``c = min(count, V - (blocked is not None))``.
    """
    rows, vocab = hidden.shape[0], weight.shape[0]
    width = slice_width or _width(rows, vocab, hidden.device)
    low = hidden.to(weight.dtype) if weight.dtype != hidden.dtype else None  # a lower-precision product
    # On a CPU a slice's rows whose largest logit cannot beat their count-th best so far are not
    # ranked (an amax pass instead of topk's, ~5x cheaper): vocabularies ordered by frequency put
    # most rows' best tokens in the first slice. On a GPU every row is ranked (no host syncs).
    prune = hidden.device.type == "cpu"
    best: tuple[Tensor, Tensor] | None = None  # each row's count best (logits, ids) so far
    maxes, sums = [], []
    for s in range(0, vocab, width):
        z = _slice_logits(hidden, low, weight[s : s + width], None if bias is None else bias[s : s + width], buffers)
        if z.dtype in (torch.float16, torch.bfloat16):
            z = z.float()
        c = min(count, z.shape[1])
        rows_in = None  # the rows this slice is ranked for: all, or those it may improve
        if blocked is not None and s <= blocked < s + z.shape[1]:
            # rank without the blocked column (set aside, put back for the log-sum-exp): no copy of z
            col = z[:, blocked - s].clone()
            z[:, blocked - s] = float("-inf")
            v, i = z.topk(c, dim=1)
            z[:, blocked - s] = col
            m = torch.maximum(v[:, :1], col.unsqueeze(1))
        else:
            m = None
            if prune and best is not None and best[0].shape[1] == count:
                m = z.amax(1, keepdim=True)
                need = (m.squeeze(1) > best[0][:, -1]).nonzero().squeeze(1)
                rows_in = need if len(need) * 2 < rows else None
            v, i = (z if rows_in is None else z.index_select(0, rows_in)).topk(c, dim=1)
            if m is None:
                m = v[:, :1]  # the slice's largest logit is its best candidate: no pass of its own
        if best is None:
            best = (v.clone(), i + s)  # updated in place below; m may view v
        elif rows_in is None:
            best = _merge(best, v, i + s, count)
        elif len(rows_in):
            top, top_ids = _merge((best[0].index_select(0, rows_in), best[1].index_select(0, rows_in)), v, i + s, count)
            best[0].index_copy_(0, rows_in, top)
            best[1].index_copy_(0, rows_in, top_ids)
        maxes.append(m)
        sums.append(z.sub_(m).exp_().sum(1, keepdim=True))
    lse = _log_sum_exp(maxes, sums)[0]
    c = min(count, vocab - (blocked is not None))
    return best[0][:, :c] - lse, best[1][:, :c]


def _merge(best: tuple[Tensor, Tensor], v: Tensor, ids: Tensor, count: int) -> tuple[Tensor, Tensor]:
    """The best ``count`` of a row's candidates so far and a slice's (``(logits, ids)``, best first)."""
    cand_v, cand_i = torch.cat([best[0], v], 1), torch.cat([best[1], ids], 1)
    top, j = cand_v.topk(min(count, cand_v.shape[1]), dim=1)
    return top, cand_i.gather(1, j)
