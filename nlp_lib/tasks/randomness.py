"""The random numbers of a training batch come from a stream keyed by the batch's place in training.

Dropout, recurrent dropout and scheduled sampling (``teacher_forcing < 1``) draw from torch's
global generators, and a user's cell may draw from Python's ``random``. Everything else in the
process draws from the same generators: Lightning, and the DataLoader, which takes a worker seed
from the global generator each time an iterator starts. A run resumed mid-epoch starts its
training iterator *after* the checkpoint's random state is restored, where the uninterrupted run
had started it at the beginning of the epoch, before that state was saved: one number drawn in
between shifted every dropout mask after a resume. Saving the global state in a checkpoint cannot
be exact while anything else draws from it between the save and the restore.

So the task owns the stream of its training batches: :class:`BatchRandomness` seeds the global
generators (the CPU's, the batch's accelerator's, Python's ``random``) from ``(seed, rank, epoch,
batch index)`` before each training batch and puts back the states they had after it. What a batch
draws depends on nothing but its place in training: a resumed run draws exactly what the
uninterrupted one drew, whatever Lightning, the DataLoader or a callback drew in between; no state
needs saving in a checkpoint; and each rank of a data-parallel run draws its own dropout masks.
"""

from __future__ import annotations

import hashlib
import random

import torch

__all__ = ["BatchRandomness", "stream_seed"]


def stream_seed(seed: int, *key: int) -> int:
    """A 63-bit seed for ``key`` under ``seed`` (hashed: neighbouring keys give unrelated seeds)."""
    digest = hashlib.blake2b(repr((int(seed), *(int(k) for k in key))).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def _generators(device: torch.device) -> list[torch.Generator]:
    """The global generators a computation on ``device`` draws from: the CPU's and the device's own."""
    if device.type == "cpu":
        return [torch.default_generator]
    backend = getattr(torch, device.type, None)  # torch.cuda, torch.xpu: a default generator per device
    if hasattr(backend, "init"):
        backend.init()  # fills default_generators
    defaults = getattr(backend, "default_generators", ())
    index = device.index if device.index is not None else backend.current_device()
    return [torch.default_generator, *defaults[index : index + 1]]


class BatchRandomness:
    """Seeds the global generators for one training batch and restores them after it (see the module docstring).

    Args:
        seed: The run's seed; a batch's generators start from ``stream_seed(seed, *key)``.
    """

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        self._saved: tuple[list[torch.Generator], list[torch.Tensor], object] | None = None

    def begin(self, device: torch.device, *key: int) -> None:
        """Seed the generators ``device`` draws from (and Python's ``random``) for the batch at ``key``."""
        self.end()  # a batch that raised never ended: its outer states first
        generators = _generators(device)
        self._saved = (generators, [g.get_state() for g in generators], random.getstate())
        seed = stream_seed(self.seed, *key)
        for g in generators:
            g.manual_seed(seed)
        random.seed(seed)

    def end(self) -> None:
        """Put back the states the generators had before :meth:`begin`."""
        if self._saved is None:
            return
        generators, states, python_state = self._saved
        self._saved = None
        for g, state in zip(generators, states, strict=True):
            g.set_state(state)
        random.setstate(python_state)
