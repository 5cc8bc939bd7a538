"""Freeze a model's encoder for the first steps of fine-tuning (``freeze_encoder_steps=N``).

A new output layer starts from random weights; its first, large gradients flowing back can damage a
trained encoder before the layer has learned anything. With ``freeze_encoder_steps=N`` only the
parameters outside the encoder (the output layer; for seq2seq the decoder too) move for the first
``N`` optimizer steps; after that everything trains.

The encoder's gradients are dropped (set to ``None``) just before each optimizer step, after DDP
has reduced them, so every rank drops the same ones; optimizers skip parameters without a
gradient (no momentum or weight-decay update either). ``requires_grad`` is never changed, so the
DDP reducer and the optimizer's parameter groups stay as they were built.
"""

from __future__ import annotations

import logging
from typing import Any

import pytorch_lightning as pl
from torch import nn

from nlp_lib.errors import ConfigError

__all__ = ["FreezeEncoder", "encoder_parameters"]

log = logging.getLogger("nlp_lib")


def encoder_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters ``freeze_encoder_steps`` holds still: ``model.encoder_parameters()`` if defined,
    else every parameter outside ``model.classifier`` (the library's classifiers and taggers)."""
    if hasattr(model, "encoder_parameters"):
        return list(model.encoder_parameters())
    head = getattr(model, "classifier", None)
    if not isinstance(head, nn.Module):
        raise ConfigError(
            f"freeze_encoder_steps: {type(model).__name__} has no .classifier and no encoder_parameters(); "
            "define encoder_parameters() to say what the encoder is"
        )
    skip = {id(p) for p in head.parameters()}
    return [p for p in model.parameters() if id(p) not in skip]


class FreezeEncoder(pl.Callback):
    """Drop the encoder's gradients for the first ``steps`` optimizer steps (see the module docstring)."""

    def __init__(self, steps: int) -> None:
        if steps < 0:
            raise ConfigError(f"freeze_encoder_steps: must be >= 0, got {steps}")
        self.steps = steps
        self._params: list[nn.Parameter] = []
        self._announced = False

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._params = encoder_parameters(pl_module.model)
        if trainer.global_step < self.steps:
            n = sum(p.numel() for p in self._params)
            total = sum(p.numel() for p in pl_module.model.parameters())
            log.info("freeze_encoder_steps=%d: %d of %d weights held still until then", self.steps, n, total)

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        if trainer.global_step < self.steps:
            for p in self._params:
                p.grad = None
        elif not self._announced and self.steps > 0:
            self._announced = True
            log.info("freeze_encoder_steps: encoder trains from step %d", trainer.global_step)
