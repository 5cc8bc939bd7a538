"""Output layer and cross-entropy in one pass over vocabulary slices: the ``[N, V]`` logits never exist whole.

``linear_cross_entropy(h, W, b, target)`` equals
``F.cross_entropy(F.linear(h, W, b), target, ignore_index=, label_smoothing=)`` (mean over the kept
targets) and its gradients, to floating-point rounding. It is how the seq2seq loss is computed in
training: the output layer of a translation model (``V`` ~ 20,000 words) is most of a step's work,
and done as one ``[N, H] x [H, V]`` product it runs at a fraction of the machine's speed on a CPU (a
fresh 60 MB result is page-faulted in, and the log-softmax and its gradient each stream it again).
Here the vocabulary is cut into column slices small enough to stay in cache:

1. per slice ``z = h W_s^T + b_s``; the row's log-sum-exp, the sum of its logits (label
   smoothing) and the gold logit are gathered; the slice is kept for step 2;
2. per slice, in place: ``p = softmax(z) - eps / V - (1 - eps) [v = y]``, the gradient of the loss
   with respect to ``z`` (times ``n``); then ``dh += p W_s``, ``dW_s = p^T h``, ``db_s = sum p``.

The gradients are computed in the forward pass (when any input needs one) and scaled by the
incoming gradient in the backward pass, so autograd never holds the logits. Double backward is
not supported. The predicted class (argmax, ties to the lowest id) comes out of the same pass.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

__all__ = ["LinearCrossEntropy", "linear_cross_entropy"]


class LinearCrossEntropy(NamedTuple):
    """``loss`` (mean over kept rows, a scalar), ``predicted`` class per kept row, ``target`` per kept row."""

    loss: Tensor
    predicted: Tensor
    target: Tensor


def _slice_width(rows: int, vocab: int, device: torch.device) -> int:
    budget = 2**20 if device.type == "cpu" else 2**27  # elements of one slice: ~4 MB on CPU (cache), a GPU wants big
    return max(128, min(vocab, budget // max(rows, 1)))


class _Function(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, h: Tensor, weight: Tensor, bias: Tensor | None, target: Tensor, smoothing: float, width: int
    ) -> tuple[Tensor, Tensor]:
        n, vocab = h.shape[0], weight.shape[0]
        need = ctx.needs_input_grad
        grads = need[0] or need[1] or (bias is not None and need[2])
        slices = []
        for s in range(0, vocab, width):
            b = None if bias is None else bias[s : s + width]
            w = weight[s : s + width]
            slices.append(h @ w.T if b is None else torch.addmm(b, h, w.T))
        # pass 1, per slice: the gold logit, the slice's max and argmax, the sum of its logits, and
        # its softmax numerators exp(z - max) in place (kept for pass 2)
        gold = h.new_zeros(n, 1)
        col = target.unsqueeze(1)
        maxes, argmaxes, sums, zsum = [], [], [], h.new_zeros(n, 1)
        for i, z in enumerate(slices):
            s = i * width
            inside = (col >= s) & (col < s + z.shape[1])
            gold += torch.where(inside, z.gather(1, (col - s).clamp(0, z.shape[1] - 1)), 0.0)
            m, a = z.max(1, keepdim=True)
            maxes.append(m)
            argmaxes.append(a + s)
            zsum += z.sum(1, keepdim=True)
            sums.append(z.sub_(m).exp_().sum(1, keepdim=True))
        m_all = torch.cat(maxes, 1)  # [n, slices]
        top = m_all.max(1, keepdim=True)
        lse = top.values + torch.log(sum(e * torch.exp(m - top.values) for e, m in zip(sums, maxes, strict=True)))
        predicted = torch.cat(argmaxes, 1).gather(1, top.indices).squeeze(1)  # first slice holding the max
        loss = ((1.0 - smoothing) * (lse - gold) + smoothing * (lse - zsum / vocab)).sum() / n
        dh = torch.zeros_like(h) if grads and need[0] else None
        dw = torch.empty_like(weight) if grads and need[1] else None
        db = torch.empty_like(bias) if grads and bias is not None and need[2] else None
        if grads:  # pass 2, per slice: p = softmax - smoothed target, then the three gradient products
            for i, z in enumerate(slices):
                s, w = i * width, z.shape[1]
                inside = (col >= s) & (col < s + w)
                p = z.mul_(torch.exp(maxes[i] - lse))
                if smoothing:
                    p.sub_(smoothing / vocab)
                p.scatter_add_(1, (col - s).clamp(0, w - 1), inside.to(p.dtype) * -(1.0 - smoothing))
                p.div_(n)
                if dh is not None:
                    dh.addmm_(p, weight[s : s + w])
                if dw is not None:
                    torch.mm(p.T, h, out=dw[s : s + w])
                if db is not None:
                    db[s : s + w] = p.sum(0)
                slices[i] = None  # type: ignore[call-overload]  # free each slice once used
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
        slice_width: Vocabulary columns per slice (default: ~1M logits a slice on CPU, 128M on GPU).

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
    width = slice_width or _slice_width(h.shape[0], weight.shape[0], h.device)
    loss, predicted = _Function.apply(h, weight, bias, y, float(label_smoothing), int(width))
    return LinearCrossEntropy(loss, predicted, y)
