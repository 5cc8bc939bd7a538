"""Checkpoints written atomically and read as untrusted input.

Writing: a kill or a full disk during a save never leaves a corrupt file in place of the previous
checkpoint, nor a temporary file filling the disk. Reading: a checkpoint is unpickled with
``torch.load(weights_only=True)`` (tensors and plain containers only: a crafted pickle cannot run
code), and a corrupt, truncated or empty file is a :class:`~nlp_lib.errors.CheckpointError` naming it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from nlp_lib.errors import CheckpointError

__all__ = ["AtomicCheckpointIO"]


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes ``path.tmp``, flushes it to disk, then renames it over ``path`` (atomic on POSIX).

    A run killed in the middle of a save leaves the previous checkpoint intact (and a stray
    ``.tmp`` that the next save replaces); a save that fails (disk full) removes its ``.tmp`` and
    raises :class:`~nlp_lib.errors.CheckpointError`, the previous checkpoint intact.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        try:
            super().save_checkpoint(checkpoint, tmp, storage_options)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except (OSError, RuntimeError) as e:  # torch.save reports a failed write as a RuntimeError
            tmp.unlink(missing_ok=True)
            kept = "the previous checkpoint is intact" if path.is_file() else "no earlier checkpoint exists"
            reason = getattr(e, "strerror", None) or str(e).splitlines()[0]
            raise CheckpointError(f"{path}: cannot write the checkpoint ({reason}); {kept}") from None

    def load_checkpoint(
        self,
        path: Any,
        map_location: Callable | None = lambda storage, loc: storage,
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        p = Path(path)
        if not p.is_file():
            raise CheckpointError(f"{p}: no such checkpoint file")
        if p.stat().st_size == 0:
            raise CheckpointError(f"{p}: empty (a run killed while writing it without atomic saves?); delete it")
        try:
            checkpoint = super().load_checkpoint(path, map_location=map_location, weights_only=True)
        except Exception as e:  # noqa: BLE001 - untrusted bytes: weights_only runs no code, so any error is a bad file
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise CheckpointError(
                f"{p}: not a readable checkpoint ({first[:300]}); it is corrupt, truncated or not written by nlp_lib"
            ) from None
        if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
            raise CheckpointError(f"{p}: not a training checkpoint (no state_dict)")
        return checkpoint
