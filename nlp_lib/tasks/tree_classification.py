"""LightningModule for tree classification: root labels and, optionally, every labelled node."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nlp_lib.structure.schedule import TreeBatch
from nlp_lib.tasks.base import ClassificationTask, OptimizerFactory, SchedulerFactory

__all__ = ["TreeClassificationTask"]


class TreeClassificationTask(ClassificationTask):
    """Trains a tree classifier on root labels and, optionally, on every labelled node.

    Args:
        model: A model whose ``forward(batch)`` returns ``logits`` ``[B, C]`` and ``node_logits``
            ``[N, C]`` (or ``None``), e.g. :class:`~nlp_lib.models.TreeClassifier`.
        optimizer: Builds the optimiser from the parameters (a ``functools.partial``; Hydra's
            ``_partial_: true``).
        scheduler: Builds a learning-rate scheduler from the optimiser, stepped every epoch.
        node_loss_weight: Weight of the mean loss over labelled non-root nodes (0: root only).
    """

    example_name = "trees"
    unit_name = "nodes"

    def __init__(
        self,
        *,
        model: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        node_loss_weight: float = 0.0,
    ) -> None:
        super().__init__(model=model, optimizer=optimizer, scheduler=scheduler)
        self.node_loss_weight = node_loss_weight

    def count(self, batch: TreeBatch) -> tuple[int, int]:
        return batch.num_trees, batch.num_nodes

    def loss_and_targets(self, batch: TreeBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.model(batch)
        root_labels = batch.labels[batch.roots]  # [B]
        loss = F.cross_entropy(out.logits, root_labels)
        if self.node_loss_weight > 0 and out.node_logits is not None:
            # The mean over labelled non-root nodes, with no device sync (no boolean indexing, no
            # branch on the count): unlabelled rows are ignored; no such node adds zero.
            targets = batch.labels.masked_fill(batch.labels < 0, -100).index_fill(0, batch.roots, -100)
            node_sum = F.cross_entropy(out.node_logits, targets, ignore_index=-100, reduction="sum")
            loss = loss + self.node_loss_weight * node_sum / (targets >= 0).sum().clamp(min=1)
        return loss, out.logits, root_labels
