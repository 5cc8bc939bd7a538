"""LightningModule for sequence classification (one label per sequence)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from nlp_lib.structure.sequence import SequenceBatch
from nlp_lib.tasks.base import ClassificationTask

__all__ = ["SequenceClassificationTask"]


class SequenceClassificationTask(ClassificationTask):
    """Cross-entropy on each sequence's label; accuracy; sequences/s and tokens/s.

    Args: see :class:`~nlp_lib.tasks.base.ClassificationTask` (``model``, ``optimizer``,
    ``scheduler``); the model returns ``logits`` ``[B, C]``, e.g.
    :class:`~nlp_lib.models.SequenceClassifier`.
    """

    example_name = "sequences"
    unit_name = "tokens"

    def count(self, batch: SequenceBatch) -> tuple[int, int]:
        return batch.num_sequences, batch.num_tokens

    def loss_and_targets(self, batch: SequenceBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits = self.model(batch).logits
        return F.cross_entropy(logits, batch.labels), logits, batch.labels
