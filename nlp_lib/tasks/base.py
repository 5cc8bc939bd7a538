"""The Lightning machinery every task shares (throughput, random streams, optimisers) and classification's metrics."""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Iterable
from typing import Any

import pytorch_lightning as pl
import torch
import torchmetrics
from torch import nn

from nlp_lib.tasks.randomness import BatchRandomness

__all__ = ["ClassificationTask", "OptimizerFactory", "SchedulerFactory", "TaskBase"]

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
SchedulerFactory = Callable[[torch.optim.Optimizer], torch.optim.lr_scheduler.LRScheduler]


class TaskBase(pl.LightningModule):
    """Examples/s and units/s in training, each training batch's own random stream, optimiser and scheduler.

    A subclass counts examples and units in each training batch with :meth:`add_throughput`.

    A training batch's random numbers (dropout masks, scheduled sampling) come from generators
    seeded by ``(seed, rank, epoch, batch index)`` (:mod:`nlp_lib.tasks.randomness`), so a run
    resumed mid-epoch draws exactly what an uninterrupted one draws. ``seed`` is torch's initial
    seed when the task is built (``nlp-lib train`` sets it to the run's ``seed=`` with
    ``pl.seed_everything`` first).

    Args:
        model: The model (a plain ``nn.Module``).
        optimizer: Builds the optimiser from the parameters (a ``functools.partial``; Hydra's
            ``_partial_: true``), or a :class:`~nlp_lib.tasks.param_groups.ParamGroups` of one
            (``optim.param_groups``: rates and weight decay by parameter name).
        scheduler: Builds a learning-rate scheduler from the optimiser, stepped every epoch.
    """

    example_name = "examples"
    unit_name = "units"

    def __init__(self, *, model: nn.Module, optimizer: OptimizerFactory, scheduler: SchedulerFactory | None = None):
        super().__init__()
        self.model = model
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.randomness = BatchRandomness(torch.initial_seed())
        self._epoch_examples = self._epoch_units = 0
        self._epoch_start = self._last_batch_end = 0.0

    def add_throughput(self, examples: int, units: int) -> None:
        self._epoch_examples += examples
        self._epoch_units += units

    def on_train_start(self) -> None:
        # A run resumed in the middle of an epoch does not start that epoch again (no
        # on_train_epoch_start): its throughput counts from here.
        self.on_train_epoch_start()

    def on_train_epoch_start(self) -> None:
        self._epoch_examples = self._epoch_units = 0
        self._epoch_start = self._last_batch_end = time.perf_counter()

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # batch_idx counts from the epoch's start in a resumed epoch too (Lightning restores it)
        self.randomness.begin(self.device, self.global_rank, self.current_epoch, batch_idx)

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        self.randomness.end()
        self._last_batch_end = time.perf_counter()

    def on_train_epoch_end(self) -> None:
        # Training time only: validation runs before this hook, after the last training batch.
        seconds = max(self._last_batch_end - self._epoch_start, 1e-9)
        self.log(f"train/{self.example_name}_per_s", self._epoch_examples / seconds, sync_dist=True, reduce_fx="sum")
        self.log(f"train/{self.unit_name}_per_s", self._epoch_units / seconds, sync_dist=True, reduce_fx="sum")

    def configure_optimizers(self):  # noqa: ANN201
        from nlp_lib.tasks.param_groups import build_optimizer

        opt = build_optimizer(self.optimizer_factory, self.model)
        if opt.defaults.get("fused") and self._clips_under_amp():
            # Lightning's mixed-precision plugin refuses to clip the gradients of an optimiser that
            # unscales them itself (fused Adam); the unfused one gives the same step.
            opt = build_optimizer(self.optimizer_factory, self.model, fused=False)
        if self.scheduler_factory is None:
            return opt
        return {"optimizer": opt, "lr_scheduler": {"scheduler": self.scheduler_factory(opt), "interval": "epoch"}}

    def _clips_under_amp(self) -> bool:
        trainer = self._trainer
        if trainer is None or not trainer.gradient_clip_val:
            return False
        return isinstance(trainer.precision_plugin, pl.plugins.precision.MixedPrecision)


class ClassificationTask(TaskBase, abc.ABC):
    """Loss and accuracy per split, on top of :class:`TaskBase`.

    A subclass says what an example and a unit are (``example_name = "trees"``, ``unit_name =
    "nodes"``), how to count them in a batch (``count``) and how to compute the loss and the
    logits/targets accuracy is measured on (``loss_and_targets``).

    Args: see :class:`TaskBase`; the model has a ``num_classes`` attribute.
    """

    def __init__(self, *, model: nn.Module, optimizer: OptimizerFactory, scheduler: SchedulerFactory | None = None):
        super().__init__(model=model, optimizer=optimizer, scheduler=scheduler)
        self.metrics = nn.ModuleDict(
            {
                split: torchmetrics.classification.MulticlassAccuracy(model.num_classes, average="micro")
                for split in ("train_acc", "val_acc", "test_acc")
            }
        )

    @abc.abstractmethod
    def count(self, batch: Any) -> tuple[int, int]:
        """``(examples, units)`` in a batch."""

    @abc.abstractmethod
    def loss_and_targets(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(loss, logits [B, C], targets [B])`` of a batch."""

    def forward(self, batch: Any):  # noqa: ANN201
        return self.model(batch)

    def _step(self, batch: Any, split: str) -> torch.Tensor:
        loss, logits, targets = self.loss_and_targets(batch)
        acc = self.metrics[f"{split}_acc"]
        acc(logits.detach().argmax(-1), targets)
        bs = int(targets.shape[0])
        on_step = split == "train"
        self.log(f"{split}/loss", loss, batch_size=bs, on_step=on_step, on_epoch=True, prog_bar=True, sync_dist=True)
        self.log(f"{split}/accuracy", acc, batch_size=bs, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        self.add_throughput(*self.count(batch))
        return self._step(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._step(batch, "test")
