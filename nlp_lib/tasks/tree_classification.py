"""LightningModule for tree classification: loss, metrics, throughput and optimisers around a model."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
import torchmetrics
from torch import nn

from nlp_lib.structure.schedule import TreeBatch

__all__ = ["TreeClassificationTask"]

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
SchedulerFactory = Callable[[torch.optim.Optimizer], torch.optim.lr_scheduler.LRScheduler]


class TreeClassificationTask(pl.LightningModule):
    """Trains a tree classifier on root labels and, optionally, on every labelled node.

    Args:
        model: A model whose ``forward(batch)`` returns ``logits`` ``[B, C]`` and ``node_logits``
            ``[N, C]`` (or ``None``), e.g. :class:`~nlp_lib.models.TreeClassifier`.
        optimizer: Builds the optimiser from the parameters (a ``functools.partial``; Hydra's
            ``_partial_: true``).
        scheduler: Builds a learning-rate scheduler from the optimiser, stepped every epoch.
        node_loss_weight: Weight of the mean loss over labelled non-root nodes (0: root only).
    """

    def __init__(
        self,
        *,
        model: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        node_loss_weight: float = 0.0,
    ) -> None:
        super().__init__()
        self.model = model
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.node_loss_weight = node_loss_weight
        num_classes = model.num_classes
        self.metrics = nn.ModuleDict(
            {
                split: torchmetrics.classification.MulticlassAccuracy(num_classes, average="micro")
                for split in ("train_acc", "val_acc", "test_acc")
            }
        )
        self._epoch_trees = 0
        self._epoch_nodes = 0
        self._epoch_start = 0.0
        self._last_batch_end = 0.0

    def forward(self, batch: TreeBatch):  # noqa: ANN201
        return self.model(batch)

    def _step(self, batch: TreeBatch, split: str) -> torch.Tensor:
        out = self.model(batch)
        root_labels = batch.labels[batch.roots]  # [B]
        loss = F.cross_entropy(out.logits, root_labels)
        if self.node_loss_weight > 0 and out.node_logits is not None:
            mask = batch.labels >= 0
            mask[batch.roots] = False
            if bool(mask.any()):
                loss = loss + self.node_loss_weight * F.cross_entropy(out.node_logits[mask], batch.labels[mask])
        acc = self.metrics[f"{split}_acc"]
        acc(out.logits.detach(), root_labels)
        bs = batch.num_trees
        on_step = split == "train"
        self.log(
            f"{split}/loss", loss, batch_size=bs, on_step=on_step, on_epoch=True, prog_bar=True, sync_dist=not on_step
        )
        self.log(f"{split}/accuracy", acc, batch_size=bs, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def training_step(self, batch: TreeBatch, batch_idx: int) -> torch.Tensor:
        self._epoch_trees += batch.num_trees
        self._epoch_nodes += batch.num_nodes
        return self._step(batch, "train")

    def validation_step(self, batch: TreeBatch, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: TreeBatch, batch_idx: int) -> None:
        self._step(batch, "test")

    def on_train_epoch_start(self) -> None:
        self._epoch_trees = self._epoch_nodes = 0
        self._epoch_start = self._last_batch_end = time.perf_counter()

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        self._last_batch_end = time.perf_counter()

    def on_train_epoch_end(self) -> None:
        # Training time only: validation runs before this hook, after the last training batch.
        seconds = max(self._last_batch_end - self._epoch_start, 1e-9)
        self.log("train/trees_per_s", self._epoch_trees / seconds, sync_dist=True, reduce_fx="sum")
        self.log("train/nodes_per_s", self._epoch_nodes / seconds, sync_dist=True, reduce_fx="sum")

    def configure_optimizers(self):  # noqa: ANN201
        opt = self.optimizer_factory(self.model.parameters())
        if self.scheduler_factory is None:
            return opt
        return {"optimizer": opt, "lr_scheduler": {"scheduler": self.scheduler_factory(opt), "interval": "epoch"}}
