"""Keep freed memory in the process on CPU training: large tensors stop page-faulting every step.

glibc's ``malloc`` serves each allocation above its mmap threshold (128 KB, raised dynamically
up to 32 MB) with a fresh ``mmap`` and returns it to the kernel when freed; heap memory above its
trim threshold is handed back too. A training step on a CPU frees and re-allocates the same large
tensors every step (a translation model's output-layer gradient and logit slices, embedding
gradients: tens of MB), so every step the kernel zero-fills and maps them again, one page fault
per 4 KB page. Measured on issue 18's Multi30K model (AMD EPYC, 2 threads): the embedding
gradient's ``fill_`` took 17 ms for 19 MB, the scaling of the output layer's gradient 23 ms; all of
it page faults.

:class:`RetainHeap` (in ``conf/callbacks/default.yaml`` as ``callbacks.cpu_heap``) sets, when the
trainer runs on the CPU and the C library is glibc: allocations up to ``mmap_threshold`` come from
the heap, and freed heap memory is kept up to ``trim_threshold``, so the pages stay mapped and are
reused from step to step. It changes nothing on a GPU (PyTorch's CUDA caching allocator already
reuses memory), under another C library, or when the process's allocator was chosen by its user
(``MALLOC_MMAP_THRESHOLD_``/``MALLOC_TRIM_THRESHOLD_`` set, jemalloc or tcmalloc preloaded).
The cost: the process's resident memory stays near its peak instead of shrinking between steps.
Turn it off with ``callbacks.cpu_heap=null``.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform
from typing import Any

import pytorch_lightning as pl

from nlp_lib.constraints import PositiveInt

__all__ = ["RetainHeap", "retain_heap"]

log = logging.getLogger("nlp_lib")

_M_TRIM_THRESHOLD = -1  # glibc's malloc.h
_M_MMAP_THRESHOLD = -3
_GLIBC_MMAP_MAX = 32 * 2**20  # glibc refuses a larger mmap threshold on 64-bit (HEAP_MAX_SIZE / 2)
_C_INT_MAX = 2**31 - 1  # mallopt takes a C int
_USER_CHOICE = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")


def _user_chose_allocator() -> str | None:
    for name in _USER_CHOICE:
        if name in os.environ:
            return name
    preload = os.environ.get("LD_PRELOAD", "")
    if "jemalloc" in preload or "tcmalloc" in preload or "mimalloc" in preload:
        return "LD_PRELOAD"
    return None


def retain_heap(mmap_threshold: int = _GLIBC_MMAP_MAX, trim_threshold: int = 2**30) -> bool:
    """Set glibc's ``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD`` for this process (see the module docstring).

    Returns:
        True when set; False (and nothing changed) on a C library other than glibc, or when the
        user chose the allocator's settings (environment variables, a preloaded allocator).
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    chosen = _user_chose_allocator()
    if chosen:
        log.debug("cpu_heap: %s is set, the allocator is left as the user configured it", chosen)
        return False
    libc = ctypes.CDLL("libc.so.6")  # glibc's soname on every Linux (find_library would spawn ldconfig)
    ok = libc.mallopt(_M_MMAP_THRESHOLD, min(int(mmap_threshold), _GLIBC_MMAP_MAX)) == 1
    return bool(ok and libc.mallopt(_M_TRIM_THRESHOLD, min(int(trim_threshold), _C_INT_MAX)) == 1)


class RetainHeap(pl.Callback):
    """Calls :func:`retain_heap` when a fit, validation, test or prediction starts on the CPU.

    Args:
        mmap_threshold: Allocations up to this many bytes come from the heap (glibc caps it at 32 MB).
        trim_threshold: Freed heap memory kept by the process, in bytes, before it is handed back
            (a C int: larger values mean ``2**31 - 1``).
    """

    def __init__(self, mmap_threshold: PositiveInt = _GLIBC_MMAP_MAX, trim_threshold: PositiveInt = 2**30) -> None:
        self.mmap_threshold, self.trim_threshold = int(mmap_threshold), int(trim_threshold)
        self.applied = False

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> Any:
        if not self.applied and trainer.strategy.root_device.type == "cpu":
            self.applied = retain_heap(self.mmap_threshold, self.trim_threshold)
