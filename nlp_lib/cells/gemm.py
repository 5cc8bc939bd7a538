"""Float32 matrix products on the CPU through oneDNN where PyTorch's default runs at half speed.

PyTorch's x86 builds multiply float32 matrices on the CPU with Intel MKL, whose kernels choose
their instruction set by CPU vendor: on AMD processors it runs its AVX2 code even where AVX-512
is there. oneDNN, which the same builds carry (``torch.ops.mkldnn``), dispatches on the
instruction set itself. Measured on an AMD EPYC (Zen 5, AVX-512), 2 threads, float32
(``scripts/bench/gemm.py``): 960 x 256 by 256 x 1024 at 170-200 GFLOP/s through ``torch.mm``
and 410-460 GFLOP/s through oneDNN; the decoder's 64 x 512 by 512 x 1024 at 180 vs 390.

The products here compute what ``torch.mm`` computes, in float32, with another summation order
(results differ by float32 rounding, ~1e-6 relative): they are not bit-identical to ``torch.mm``.
:func:`linear` and :func:`addmm` are differentiable (their gradients are oneDNN products too) and
serve the recurrent cells and the seq2seq decoder; :func:`linear_add` and :func:`mm` carry no
graph and serve code that computes its own gradients (the output layer's loss,
:mod:`nlp_lib.modules.linear_cross_entropy`). Traced, exported (ONNX) or compiled code, CPU
autocast, forward-mode AD and ``torch.func`` transforms get ``torch``'s own operations, as do the
differentiable products under :data:`MIN_MACS` multiply-adds.

Which backend runs (:func:`cpu_backend`):

* ``auto`` (default): oneDNN on CPUs whose vendor is not Intel (MKL's own dispatch serves Intel
  processors at full width), when oneDNN is available and passes a check at first use;
* ``onednn`` / ``torch``: always that one (``onednn`` still falls back when it is unavailable).

Set it with ``NLP_LIB_CPU_MATMUL=auto|onednn|torch`` or :func:`set_cpu_backend`. Anything but a
float32 CPU tensor (float64, bfloat16, a GPU) always goes through ``torch.mm``.

oneDNN compiles a kernel for each new shape (~4 ms for the output layer's slice, measured) and
keeps 1,024 of them. Batches by a token budget give a new row count almost every batch, so the
rows of every product are padded with zeros to a bucket (:func:`bucket`: a multiple of 16 up to
256, of 64 up to 4,096, of 256 beyond) and the padding's results dropped: a few dozen shapes per
model, compiled once.

History: an earlier attempt (docs/benchmarks.md, "Recurrent cells", on a CPU where MKL was ~1.4x
behind oneDNN rather than ~2x) was removed because new row counts recompiled kernels on every
batch and small products lost to the call overhead: the buckets and :data:`MIN_MACS` answer both.
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Any, Literal

import torch
from torch import Tensor, nn

__all__ = [
    "MIN_MACS",
    "Linear",
    "addmm",
    "bucket",
    "cpu_backend",
    "linear",
    "linear_add",
    "mm",
    "pad_rows",
    "set_cpu_backend",
    "runs_onednn",
    "uses_onednn",
]

log = logging.getLogger("nlp_lib")

Backend = Literal["auto", "onednn", "torch"]
_CHOICES = ("auto", "onednn", "torch")
_ENV = "NLP_LIB_CPU_MATMUL"
_choice: list[str] = []  # set_cpu_backend's, else the environment's (read at first use)


def set_cpu_backend(backend: Backend) -> None:
    """Choose the CPU float32 product backend for this process (see the module docstring)."""
    if backend not in _CHOICES:
        raise ValueError(f"the CPU matmul backend must be one of {_CHOICES}, got {backend!r}")
    _choice[:] = [backend]


def cpu_backend() -> str:
    """The backend float32 CPU products run on now: ``"onednn"`` or ``"torch"``."""
    if not _choice:
        value = os.environ.get(_ENV, "auto").strip().lower() or "auto"
        if value not in _CHOICES:
            raise ValueError(f"{_ENV}={value!r}: expected one of {', '.join(_CHOICES)}")
        _choice.append(value)
    choice = _choice[0]
    if choice == "torch":
        return "torch"
    if choice == "auto" and _cpu_vendor() == "GenuineIntel":
        return "torch"
    return "onednn" if _onednn_works() else "torch"


def uses_onednn(*tensors: Tensor | None) -> bool:
    """Whether a product of these tensors runs on oneDNN: dense float32 CPU tensors, that backend
    chosen, and no graph being traced, exported or compiled (those see ``torch.mm``), nor CPU
    autocast, forward-mode AD or a ``torch.func`` transform on."""
    return (
        not _capturing()  # first: compiling and fx tracing must not see the checks below
        and all(t is None or _plain_float32(t) for t in tensors)
        and cpu_backend() == "onednn"
    )


def _plain_float32(t: Tensor) -> bool:
    return (
        isinstance(t, Tensor)
        and t.layout == torch.strided
        and t.device.type == "cpu"
        and t.dtype == torch.float32
        and not torch._C._functorch.is_functorch_wrapped_tensor(t)  # vmap, grad...: no rule for the op
    )


def runs_onednn(x: Tensor, w: Tensor, *others: Tensor | None) -> bool:
    """Whether the product ``x @ w.T`` (with ``others``: bias, accumulator...) runs on oneDNN:
    :func:`uses_onednn` and at least :data:`MIN_MACS` multiply-adds."""
    return uses_onednn(x, w, *others) and x.dim() >= 1 and _big(x.numel(), w.shape[0])


def linear(x: Tensor, w: Tensor, b: Tensor | None = None) -> Tensor:
    """``x @ w.T + b`` as ``nn.functional.linear`` (``x`` ``[..., K]``, ``w`` ``[M, K]``, ``b`` ``[M]``), differentiable.

    Either operand may be a view. Products under :data:`MIN_MACS` multiply-adds, and biases of
    another shape than ``[M]`` (broadcast), run on torch."""
    if not (runs_onednn(x, w, b) and w.dim() == 2 and (b is None or b.shape == w.shape[:1])):
        return nn.functional.linear(x, w, b)
    x2 = x.reshape(-1, x.shape[-1])
    out = _Linear.apply(x2, w, b, None) if _needs_grad(x, w, b) else _op(x2, w, b)
    return out.view(*x.shape[:-1], w.shape[0])  # a view outside the Function: in-place edits allowed


def addmm(acc: Tensor, x: Tensor, w: Tensor) -> Tensor:
    """``acc + x @ w.T`` (``x`` ``[N, K]``, ``w`` ``[M, K]``, ``acc`` ``[N, M]``), differentiable: a new tensor.
    An ``acc`` of another shape (broadcast) runs on torch."""
    if not (runs_onednn(x, w, acc) and _full_acc(acc, x, w)):
        return torch.addmm(acc, x, w.T)
    if _needs_grad(acc, x, w):
        return _Linear.apply(x, w, None, acc)
    return _op(x, w, None, acc)


class Linear(nn.Linear):
    """``nn.Linear`` whose product is :func:`linear` (parameters, state dict and hooks as ``nn.Linear``'s)."""

    def forward(self, x: Tensor) -> Tensor:
        return linear(x, self.weight, self.bias)


def linear_add(acc: Tensor, x: Tensor, w: Tensor) -> Tensor:
    """``acc + x @ w.T`` without autograd: a new tensor on the oneDNN path, ``acc`` added to in place otherwise."""
    if runs_onednn(x, w, acc) and _full_acc(acc, x, w):
        return _op(x, w, None, acc)
    return acc.addmm_(x, w.T)


def _full_acc(acc: Tensor, x: Tensor, w: Tensor) -> bool:
    return x.dim() == 2 and w.dim() == 2 and acc.shape == (x.shape[0], w.shape[0])


def mm(a: Tensor, b: Tensor, *, out: Tensor | None = None) -> Tensor:
    """``a @ b`` (``[N, K]`` by ``[K, M]``) without autograd, into ``out`` when given (copied there on the oneDNN path)."""
    if runs_onednn(a, b.T, out):
        res = _op(a, b.T, None)
        return res if out is None else out.copy_(res)
    return torch.mm(a, b, out=out)


def bucket(rows: int) -> int:
    """The row count a product of ``rows`` rows runs at on oneDNN (see the module docstring)."""
    step = 1 if rows <= 16 else 16 if rows <= 256 else 64 if rows <= 4096 else 256
    return -(-rows // step) * step


def pad_rows(x: Tensor, rows: int | None = None) -> Tensor:
    """``x`` ``[N, K]`` with zero rows appended up to ``rows`` (default :func:`bucket` of ``N``); ``x`` itself when none are needed."""
    n = x.shape[0]
    target = bucket(n) if rows is None else rows
    if target == n:
        return x
    out = x.new_zeros(target, x.shape[1])
    out[:n] = x
    return out


MIN_MACS = 1 << 23
"""Products of fewer multiply-adds run on torch: a oneDNN call (and the autograd function around it)
costs tens of microseconds more than ``torch.mm``'s, which a small model's products do not repay
(the SCAN model, hidden 128, trained 0.87x as fast with all of its products on oneDNN)."""


def _big(x_numel: int, m: int) -> bool:
    return x_numel * m >= MIN_MACS  # rows x K x M


def _plain(t: Tensor) -> Tensor:
    """``t`` when it is contiguous or the transpose of a contiguous matrix (what oneDNN reads as is),
    else a contiguous copy (column slices, steps: strided layouts are not handed to the kernel)."""
    if t.is_contiguous() or (t.dim() == 2 and t.T.is_contiguous()):
        return t
    return t.contiguous()


def _op(x: Tensor, w: Tensor, b: Tensor | None, acc: Tensor | None = None) -> Tensor:
    """``x @ w.T + b (+ acc)`` on oneDNN, ``x``'s rows padded to their bucket for the kernel."""
    x, w = _plain(x), _plain(w)
    b = None if b is None else b.contiguous()
    acc = None if acc is None else acc.contiguous()
    n = x.shape[0]
    xp = pad_rows(x)
    if acc is None:
        out = torch.ops.mkldnn._linear_pointwise(xp, w, b, "none", [], "")
    else:
        out = torch.ops.mkldnn._linear_pointwise.binary(xp, pad_rows(acc, xp.shape[0]), w, b, "add")
    return out if xp is x else out[:n]


def _needs_grad(*tensors: Tensor | None) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def _capturing() -> bool:
    """Tracing (jit, fx), exporting, compiling, CPU autocast or forward-mode AD: torch's own operations."""
    return (
        torch.compiler.is_compiling()
        or torch.fx._symbolic_trace.is_fx_symbolic_tracing()
        or torch.jit.is_tracing()
        or torch.onnx.is_in_onnx_export()
        or torch.is_autocast_enabled("cpu")
        or getattr(torch.autograd.forward_ad, "_current_level", -1) >= 0
    )


class _Linear(torch.autograd.Function):
    """``acc + x @ w.T + b`` with oneDNN's products forward and backward (``x`` ``[N, K]``, ``acc`` ``[N, M]``).

    Saves only what the wanted gradients read, as ``addmm`` does (``x`` for ``w``'s, ``w`` for
    ``x``'s); returns a tensor of its own (in-place edits of the result are allowed). A backward
    that builds a graph (``create_graph=True``: Hessian-vector products, gradient penalties) runs
    torch's differentiable products instead, so second derivatives are right."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, w: Tensor, b: Tensor | None, acc: Tensor | None) -> Tensor:
        n = x.shape[0]
        out = _op(x, w, b, acc)
        need_w, need_x = ctx.needs_input_grad[1], ctx.needs_input_grad[0]
        ctx.save_for_backward(x if need_w else None, w if need_x else None)
        ctx.has = (b is not None, acc is not None)
        return out if out.shape[0] == n and out._base is None else out.clone()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, w = ctx.saved_tensors
        need = ctx.needs_input_grad
        if torch.is_grad_enabled():  # create_graph: a differentiable backward
            gx = grad @ w if need[0] else None
            gw = grad.T @ x if need[1] else None
        else:
            gx = _op(grad, w.T, None) if need[0] else None
            gw = _op(pad_rows(grad).T, pad_rows(x).T, None) if need[1] else None  # zero rows add nothing
        gb = grad.sum(0) if ctx.has[0] and need[2] else None
        gacc = grad if ctx.has[1] and need[3] else None
        return gx, gw, gb, gacc


@functools.cache
def _cpu_vendor() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


_WORKS: list[bool] = []  # the check's answer, once it ran to the end


def _onednn_works() -> bool:
    """oneDNN's linear is there and computes a product right (checked once per process; a check
    that raised inside a mode it cannot run in (a fake-tensor mode...) is tried again later)."""
    if _WORKS:
        return _WORKS[0]
    try:
        if not torch.backends.mkldnn.is_available():
            _WORKS.append(False)
            return False
        op = torch.ops.mkldnn._linear_pointwise
        gen = torch.Generator().manual_seed(0)
        cpu = {"generator": gen, "dtype": torch.float32, "device": "cpu"}  # whatever the defaults are now
        x, w, b = (torch.randn(*s, **cpu) for s in ((7, 19), (33, 19), (33,)))
        acc = torch.randn(7, 33, **cpu)
        want = torch.addmm(b, x, w.T)
        ok = torch.allclose(op(x, w, b, "none", [], ""), want, rtol=1e-5, atol=1e-5)
        ok = ok and torch.allclose(op(x.T.contiguous().T, w, None, "none", [], ""), x @ w.T, rtol=1e-5, atol=1e-5)
        ok = ok and torch.allclose(op.binary(x, acc, w, None, "add"), acc + x @ w.T, rtol=1e-5, atol=1e-5)
    except Exception as e:  # noqa: BLE001 - an op missing from this build, or a mode it cannot run in
        log.debug("oneDNN products unavailable for now (%s: %s); using torch.mm", type(e).__name__, e)
        return False
    if not ok:
        log.warning("oneDNN products disagree with torch.mm on this machine; using torch.mm")
    _WORKS.append(bool(ok))
    return bool(ok)
