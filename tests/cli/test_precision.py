"""Mixed precision, gradient accumulation and clipping, chosen by config (conf/precision/, trainer.*)."""

import math

import pytest
import torch
import yaml
from conftest import TINY_LISTOPS

from nlp_lib.cli import compose, train
from nlp_lib.errors import ConfigError
from nlp_lib.tasks.base import ClassificationTask

FOUR_STEPS = ["trainer.max_epochs=1", "trainer.limit_train_batches=4", "trainer.limit_val_batches=1"]


@pytest.mark.integration
@pytest.mark.parametrize("accumulate", [1, 2])
def test_bf16_mixed_with_accumulation_trains_on_cpu(accumulate, tmp_path, monkeypatch):
    seen = []  # the autocast state each training step ran under
    step = ClassificationTask.training_step

    def recording_step(self, batch, batch_idx):
        seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
        return step(self, batch, batch_idx)

    monkeypatch.setattr(ClassificationTask, "training_step", recording_step)
    run = tmp_path / "run"
    overrides = [*TINY_LISTOPS, *FOUR_STEPS, "precision=bf16-mixed", f"trainer.accumulate_grad_batches={accumulate}"]
    metrics = train(compose("listops_tree_lstm", [*overrides, f"run_dir={run}"]))

    assert seen == [(True, torch.bfloat16)] * 4  # four batches, every one under bf16 autocast
    last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["global_step"] == 4 // accumulate  # optimiser steps: accumulation halves them
    params = last["state_dict"]
    assert all(v.dtype == torch.float32 for k, v in params.items() if v.is_floating_point())  # float32 weights
    assert math.isfinite(metrics["train"]["loss"]) and math.isfinite(metrics["val"]["loss"])
    saved = yaml.safe_load((run / "config.yaml").read_text())["trainer"]
    assert saved["precision"] == "bf16-mixed" and saved["accumulate_grad_batches"] == accumulate


@pytest.mark.parametrize("trainer", ["cpu", "gpu", "ddp", "ddp_cpu"])
@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed", "16-mixed"])
def test_precision_choice_reaches_every_trainer_group(trainer, precision):
    cfg = compose("listops_tree_lstm", [f"trainer={trainer}", f"precision={precision}"])
    assert cfg.trainer.precision == precision  # no trainer group overrides the precision group
    assert cfg.trainer.accumulate_grad_batches == 1 and cfg.trainer.gradient_clip_algorithm == "norm"


def test_default_precision_is_float32():
    assert compose("listops_tree_lstm").trainer.precision == "32-true"


def test_misspelled_precision_option_lists_the_choices():
    with pytest.raises(ConfigError, match=r"precision/bf16-mixd(.|\n)*Available options in 'precision'"):
        compose("listops_tree_lstm", ["precision=bf16-mixd"])


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("trainer.precision=bf16-mixd", "trainer.precision"),
        ("trainer.accumulate_grad_batches=0", "trainer.accumulate_grad_batches"),
        ("trainer.gradient_clip_algorithm=nrm", "trainer.gradient_clip_algorithm"),
        ("trainer.gradient_clip_val=-1", "trainer.gradient_clip_val"),
        ("trainer.max_epochs=abc", "trainer.max_epochs"),
        ("+trainer.max_steps=1.5", "trainer.max_steps"),
    ],
)
def test_bad_trainer_value_names_its_key_before_anything_is_written(override, key, tmp_path):
    cfg = compose("listops_tree_lstm", [override, f"run_dir={tmp_path / 'run'}"])
    with pytest.raises(ConfigError, match=rf"^{key}: "):
        train(cfg)
    assert not (tmp_path / "run").exists()


@pytest.mark.integration
def test_clipping_by_value_and_no_clipping_train(tmp_path):
    for i, clip in enumerate(["trainer.gradient_clip_algorithm=value", "trainer.gradient_clip_val=null"]):
        metrics = train(
            compose("listops_tree_lstm", [*TINY_LISTOPS, *FOUR_STEPS, clip, f"run_dir={tmp_path / str(i)}"])
        )
        assert math.isfinite(metrics["train"]["loss"])
