"""Fast building blocks for cells: a linear layer that runs on oneDNN on CPU.

A recurrent cell spends most of its time in matrix multiplies (``[batch, hidden] x [hidden,
4 * hidden]`` at every step, and the transposed product in the backward pass). On CPU, PyTorch runs
``F.linear`` / ``addmm`` on MKL's ``sgemm``, while its own fused ``nn.LSTM`` runs on oneDNN. On the
AMD EPYC CPU we measure on, oneDNN is 15-30% faster for these shapes, a little more with the weight
reordered ("packed") once into its blocked layout and reused at every step; a training step of an
LSTM at batch 64 / hidden 256 gets ~10% faster, at hidden 512 ~20% (``scripts/bench/cells.py``,
``docs/benchmarks.md``).

:func:`linear` is ``F.linear`` with that path: ``x @ weight.T (+ bias) (+ add)`` computed by oneDNN
when everything is a float32 CPU tensor and the product has at least :data:`MIN_MACS`
multiply-adds (below it oneDNN's fixed cost per call wins over its faster kernel), with a
hand-written backward. Everywhere else it *is* ``F.linear`` (+ ``add``): CUDA, other dtypes, under
autocast, while tracing, exporting to ONNX or compiling, inside ``torch.func`` transforms or
forward-mode AD, for a bias or ``add`` that broadcasts, or when disabled. It is on by default where
it was measured to gain, on AMD CPUs (Linux); elsewhere (Intel, where MKL is at home; ARM; other
systems) it is off until measured: ``NLP_LIB_FAST_CPU=1`` or ``0`` (or :func:`set_fast_cpu`)
decides either way. Results equal ``F.linear``'s to float32 rounding (the summation order differs);
its backward cannot itself be differentiated (double backward raises).

:func:`packed_weights` is the scope in which a weight used more than once is packed once: the
sequence runner and the seq2seq decoder open it around their time loops, so every step reuses the
packed recurrent weight (and its packed transpose in the backward pass). A weight changed in place
by PyTorch operations inside the scope is packed again (its version counter is checked), but
writes through ``.data`` and fused optimizers do not move that counter: a scope must not span an
optimizer step or such writes (the library's scopes cover one forward and its backward). Outside
any scope nothing is cached.

A user's cell gets the same speed by calling :func:`linear` for its matrix multiplies::

    from nlp_lib.cells import ops
    gates = ops.linear(h, self.weight_hh, add=x_proj)   # x_proj + h @ weight_hh.T
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections.abc import Iterator

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

__all__ = ["linear", "packed_weights", "set_fast_cpu", "fast_cpu_enabled", "MIN_MACS"]


def _default_enabled() -> bool:
    """``NLP_LIB_FAST_CPU`` if set; else on where it was measured to gain: AMD CPUs (read from Linux's /proc)."""
    env = os.environ.get("NLP_LIB_FAST_CPU", "").strip().lower()
    if env:
        return env not in {"0", "false", "no", "off"}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            return "AuthenticAMD" in f.read(4096)
    except OSError:  # not Linux: not measured
        return False


_ENABLED = _default_enabled()
# Below this many multiply-adds (rows x in x out) oneDNN's fixed cost per call (~20 us) outweighs its
# faster kernel: measured break-even near 64 x 192 x 768 (``docs/benchmarks.md``).
MIN_MACS = 12_000_000
_WORKS: bool | None = None  # whether oneDNN's linear is present and correct in this torch (checked once)
_LOCAL = threading.local()  # .scopes: this thread's open packed_weights() scopes (innermost last)


def set_fast_cpu(enabled: bool) -> None:
    """Turn the oneDNN path of :func:`linear` on or off for this process (default: see the module docstring)."""
    global _ENABLED
    _ENABLED = bool(enabled)


def fast_cpu_enabled() -> bool:
    """Whether :func:`linear` can use oneDNN here (enabled, and oneDNN's linear works in this torch)."""
    return _ENABLED and _onednn_works()


def _onednn_works() -> bool:
    global _WORKS
    if _WORKS is None:
        try:
            op = torch.ops.mkldnn._linear_pointwise
            with torch.no_grad():
                kw = {"dtype": torch.float32, "device": "cpu"}
                x, w, b = torch.randn(3, 5, **kw), torch.randn(4, 5, **kw), torch.randn(4, **kw)
                ok = torch.allclose(op(x, w, b, "none", [], ""), torch.nn.functional.linear(x, w, b), atol=1e-5)
                packed = torch.ops.mkldnn._reorder_linear_weight(w, None)
                ok = ok and torch.allclose(op.binary(x, b.expand(3, 4), packed, None, "add"), x @ w.t() + b, atol=1e-5)
            _WORKS = bool(torch.backends.mkldnn.is_available() and ok)
        except (AttributeError, RuntimeError):  # an older/newer torch without these operators
            _WORKS = False
    return _WORKS


@contextlib.contextmanager
def packed_weights() -> Iterator[None]:
    """Within this scope (per thread), :func:`linear` packs a weight used more than once, once."""
    scopes = _scopes()
    scopes.append({})
    try:
        yield
    finally:
        scopes.pop()


def _scopes() -> list[dict]:
    if not hasattr(_LOCAL, "scopes"):
        _LOCAL.scopes = []
    return _LOCAL.scopes


def _use_fast(x: Tensor, weight: Tensor, bias: Tensor | None, add: Tensor | None) -> bool:
    if not _ENABLED or x.device.type != "cpu" or weight.device.type != "cpu":
        return False
    if x.dtype != torch.float32 or weight.dtype != torch.float32:
        return False
    if bias is not None and (bias.dtype != torch.float32 or bias.shape != (weight.shape[0],)):
        return False  # (a broadcast bias like ``[1]`` is F.linear's business)
    if add is not None and (add.dtype != torch.float32 or add.shape != x.shape[:-1] + (weight.shape[0],)):
        return False  # an ``add`` that broadcasts: plain ops
    if torch._C._are_functorch_transforms_active() or torch.autograd.forward_ad._current_level >= 0:
        return False  # torch.func transforms and forward-mode AD: no vmap/jvp rules here
    if torch.is_autocast_enabled("cpu") or torch.jit.is_tracing() or torch.jit.is_scripting():
        return False
    if torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling():
        return False
    return _onednn_works()


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None, *, add: Tensor | None = None) -> Tensor:
    """``x @ weight.T + bias + add`` (``bias`` and ``add`` optional), like ``F.linear``.

    Args:
        x: ``[..., in]``.
        weight: ``[out, in]``.
        bias: ``[out]`` or None.
        add: A tensor of the output's shape ``[..., out]`` added to the product, e.g. a recurrent
            cell's hoisted input projection (one fused operation on the oneDNN path).
    """
    if not (_use_fast(x, weight, bias, add) and x.numel() * weight.shape[0] >= MIN_MACS):  # multiply-adds
        y = torch.nn.functional.linear(x, weight, bias)
        return y if add is None else y + add
    scopes = _scopes()
    scope = scopes[-1] if scopes else None
    return _OneDNNLinear.apply(x, weight, bias, add, scope)


def _weight(weight: Tensor, scope: dict | None, transposed: bool = False) -> Tensor | None:
    """``weight`` (or ``weight.T``) reordered ("packed") for oneDNN at its second use in a scope.

    Reordering costs about as much as one product, so a weight used once in a scope (an input
    projection over all steps) is not packed: None (the caller uses it as it is); a recurrent
    weight, used at every step, is packed at its second use and reused after.
    """
    if scope is None:
        return None
    key = (id(weight), transposed)
    stamp = (weight._version, weight.data_ptr())
    hit = scope.get(key)
    if hit is None or hit[0]() is not weight or hit[1] != stamp:  # first use (or changed in place)
        # A weak reference: a weight made afresh at every step is not kept alive by the scope; when it
        # goes, its entry goes (and a new tensor with its id cannot match the dead reference meanwhile).
        scope[key] = (weakref.ref(weight, lambda _, key=key: scope.pop(key, None)), stamp, None)
        return None
    if hit[2] is None:
        w = weight.detach()
        hit = (hit[0], stamp, _pack(w.t().contiguous() if transposed else w))
        scope[key] = hit
    return hit[2]


def _pack(weight: Tensor) -> Tensor:
    """``weight`` ``[out, in]`` in oneDNN's blocked layout for any number of rows."""
    return torch.ops.mkldnn._reorder_linear_weight(weight, None)


class _OneDNNLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, add: Tensor | None, scope: dict | None):
        # Only what the backward needs (as F.linear): x for the weight's gradient, the weight for x's.
        ctx.save_for_backward(x if ctx.needs_input_grad[1] else None, weight if ctx.needs_input_grad[0] else None)
        ctx.scope = scope
        ctx.has_bias = bias is not None
        ctx.has_add = add is not None
        w = _weight(weight, scope)
        w = weight.detach() if w is None else w
        op = torch.ops.mkldnn._linear_pointwise
        bias = None if bias is None else bias.contiguous()  # oneDNN reads it as contiguous memory
        if add is not None:
            return op.binary(x, add.contiguous(), w, bias, "add")
        return op(x, w, bias, "none", [], "")

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        grad = grad.contiguous()
        grad_x = grad_w = grad_b = grad_add = None
        if ctx.needs_input_grad[0]:
            wt = _weight(weight, ctx.scope, transposed=True)  # a one-off product: the plain mm is as fast
            grad_x = grad @ weight if wt is None else torch.ops.mkldnn._linear_pointwise(grad, wt, None, "none", [], "")
        flat = grad.reshape(-1, grad.shape[-1])
        if ctx.needs_input_grad[1]:
            grad_w = flat.t() @ x.reshape(-1, x.shape[-1])
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = flat.sum(0)
        if ctx.has_add and ctx.needs_input_grad[3]:
            grad_add = grad
        return grad_x, grad_w, grad_b, grad_add, None
