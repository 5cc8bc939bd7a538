"""A batch of source and target sequences for seq2seq models, and the special ids (torch only).

Ids ``PAD=0, UNK=1, BOS=2, EOS=3`` are reserved by every seq2seq vocabulary and model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import torch
from torch import Tensor

__all__ = ["Seq2SeqBatch", "PAD", "UNK", "BOS", "EOS"]

PAD, UNK, BOS, EOS = 0, 1, 2, 3


@dataclass
class Seq2SeqBatch:
    """A padded batch of source and target sequences.

    Attributes:
        src: ``[B, S]`` source ids, ``PAD`` after each length.
        src_lengths: ``[B]``.
        tgt_in: ``[B, T]`` decoder inputs ``<s> y_1 .. y_n`` (padded).
        tgt_out: ``[B, T]`` targets ``y_1 .. y_n </s>`` (padded).
        references: The raw target texts (for exact match, BLEU and chrF).
    """

    src: Tensor
    src_lengths: Tensor
    tgt_in: Tensor
    tgt_out: Tensor
    references: list[str]

    def pin_memory(self) -> Seq2SeqBatch:
        """The same batch in pinned memory (DataLoader's ``pin_memory=True`` calls this)."""
        return Seq2SeqBatch(
            **{
                f.name: (v.pin_memory() if isinstance(v, Tensor) else v)
                for f in fields(self)
                for v in [getattr(self, f.name)]
            }
        )

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Seq2SeqBatch:
        return Seq2SeqBatch(
            **{
                f.name: getattr(self, f.name).to(device, non_blocking=non_blocking)
                if isinstance(getattr(self, f.name), Tensor)
                else getattr(self, f.name)
                for f in fields(self)
            }
        )

    def __len__(self) -> int:
        return int(self.src.shape[0])

    @property
    def num_target_tokens(self) -> int:
        return int((self.tgt_out != PAD).sum())

    @staticmethod
    def from_ids(src: Sequence[Sequence[int]], tgt: Sequence[Sequence[int]], references: Sequence[str]) -> Seq2SeqBatch:
        """Pad ``src`` and build ``<s> + y`` / ``y + </s>`` from ``tgt`` (ids without specials)."""
        b = len(src)
        s_len = torch.tensor([max(len(x), 1) for x in src], dtype=torch.long)
        t_len = max(len(y) for y in tgt) + 1
        s = torch.full((b, int(s_len.max())), PAD, dtype=torch.long)
        t_in = torch.full((b, t_len), PAD, dtype=torch.long)
        t_out = torch.full((b, t_len), PAD, dtype=torch.long)
        for i, (x, y) in enumerate(zip(src, tgt, strict=True)):
            if x:
                s[i, : len(x)] = torch.tensor(x, dtype=torch.long)
            else:  # an empty source still gets one (unknown) token to attend to
                s[i, 0] = 1
            t_in[i, 0] = BOS
            if y:
                yt = torch.tensor(y, dtype=torch.long)
                t_in[i, 1 : len(y) + 1] = yt
                t_out[i, : len(y)] = yt
            t_out[i, len(y)] = EOS
        return Seq2SeqBatch(s, s_len, t_in, t_out, list(references))
