"""A batch of variable-length token sequences: padded ids, lengths and labels (torch only)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import torch
from torch import Tensor

__all__ = ["SequenceBatch"]


@dataclass
class SequenceBatch:
    """Token sequences padded to the longest, with their lengths.

    Attributes:
        tokens: ``[B, T]`` token ids, ``pad_id`` past each length.
        lengths: ``[B]`` number of real tokens per sequence (at least 1).
        labels: ``[B]`` one label per sequence, or ``[B, T]`` one per token (``-1`` past the end and
            where unlabelled), or ``None``.
    """

    tokens: Tensor
    lengths: Tensor
    labels: Tensor | None = None

    @property
    def num_sequences(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def num_tokens(self) -> int:
        return int(self.lengths.sum())

    @staticmethod
    def from_lists(
        tokens: Sequence[Sequence[int]],
        labels: Sequence[int] | Sequence[Sequence[int]] | None = None,
        pad_id: int = 0,
    ) -> SequenceBatch:
        """Pad ``tokens`` (lists of ids) into a batch; ``labels`` per sequence or per token."""
        if not tokens:
            raise ValueError("cannot build an empty batch")
        lengths = torch.tensor([len(t) for t in tokens], dtype=torch.long)
        if int(lengths.min()) < 1:
            raise ValueError("every sequence needs at least one token")
        t_max = int(lengths.max())
        tok = torch.full((len(tokens), t_max), pad_id, dtype=torch.long)
        for i, t in enumerate(tokens):
            tok[i, : len(t)] = torch.as_tensor(t, dtype=torch.long)
        lab = None
        if labels is not None:
            if len(labels) and isinstance(labels[0], Sequence):
                lab = torch.full((len(tokens), t_max), -1, dtype=torch.long)
                for i, ls in enumerate(labels):
                    lab[i, : len(ls)] = torch.as_tensor(ls, dtype=torch.long)
            else:
                lab = torch.as_tensor(labels, dtype=torch.long)
        return SequenceBatch(tok, lengths, lab)

    def pin_memory(self) -> SequenceBatch:
        """The same batch in pinned memory (DataLoader's ``pin_memory=True`` calls this)."""
        return SequenceBatch(
            **{
                f.name: (v.pin_memory() if isinstance(v, Tensor) else v)
                for f in fields(self)
                for v in [getattr(self, f.name)]
            }
        )

    def to(self, device: torch.device | str, non_blocking: bool = False) -> SequenceBatch:
        """The same batch on ``device`` (Lightning calls this)."""
        return SequenceBatch(
            **{
                f.name: (v.to(device, non_blocking=non_blocking) if isinstance(v, Tensor) else v)
                for f in fields(self)
                for v in [getattr(self, f.name)]
            }
        )
