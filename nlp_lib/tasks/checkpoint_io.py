"""Checkpoints written atomically: a kill during a save never leaves a corrupt file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

__all__ = ["AtomicCheckpointIO"]


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes ``path.tmp``, flushes it to disk, then renames it over ``path`` (atomic on POSIX).

    A run killed in the middle of a save leaves the previous checkpoint intact (and a stray
    ``.tmp`` that the next save replaces).
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        super().save_checkpoint(checkpoint, tmp, storage_options)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
