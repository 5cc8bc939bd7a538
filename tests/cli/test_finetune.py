"""Fine-tuning from a bundle: init_from=<bundle> keeps the encoder, reuses the tokenizer, swaps the head."""

import json
import logging

import pytest
import torch
from conftest import TINY_LISTOPS

import nlp_lib
from nlp_lib.cli import compose, train
from nlp_lib.errors import ConfigError

TOPICS = {
    "sport": ["the team won the match", "a late goal for the home side", "the striker scored twice"],
    "politics": ["parliament passed the bill", "the minister resigned today", "voters went to the polls"],
    "science": ["the telescope saw a new planet", "cells divide under the microscope", "a new element was found"],
}


def _jsonl(path, rows):
    path.write_text("\n".join(json.dumps({"text": t, "label": y}) for t, y in rows) + "\n")
    return path


def _topics(tmp_path):
    """The new task every fine-tuning test moves to: 3 topic labels, 90 rows."""
    return _jsonl(tmp_path / "topics.jsonl", [(t, y) for y, ts in TOPICS.items() for t in ts] * 10)


@pytest.mark.integration
def test_text_classifier_fine_tuned_on_new_labels(tmp_path, caplog):
    first = _jsonl(tmp_path / "sentiment.jsonl", [("a great film", "pos"), ("an awful film", "neg")] * 30)
    base = tmp_path / "base"
    common = ["trainer.enable_progress_bar=false", "optim.optimizer.lr=0.01"]
    train(compose("text_classifier", [f"data.train_path={first}", f"run_dir={base}", "data.vocab_size=60", *common]))

    new = _topics(tmp_path)
    tuned = tmp_path / "tuned"
    with caplog.at_level(logging.INFO, logger="nlp_lib"):
        metrics = train(
            compose(
                "text_classifier",
                [
                    f"data.train_path={new}",
                    f"run_dir={tuned}",
                    f"init_from={base / 'bundle'}",
                    "trainer.max_epochs=4",
                    *common,
                ],
            )
        )
    assert "output layer replaced" in caplog.text
    assert (tuned / "tokenizer.model").read_bytes() == (base / "tokenizer.model").read_bytes()  # same pieces
    assert json.loads((tuned / "labels.json").read_text()) == ["politics", "science", "sport"]
    assert metrics["val"]["accuracy"] > 0.8  # chance: 1/3


@pytest.mark.integration
def test_tree_model_fine_tuned_keeps_known_words_and_head(tmp_path, caplog):
    base = tmp_path / "base"
    train(compose("listops_tree_lstm", [*TINY_LISTOPS, f"run_dir={base}"]))
    from nlp_lib import bundle

    before = bundle.read(base / "bundle")
    tuned = tmp_path / "tuned"
    with caplog.at_level(logging.INFO, logger="nlp_lib"):
        train(
            compose(
                "listops_tree_lstm",
                [
                    *TINY_LISTOPS,
                    "trainer.max_epochs=1",
                    "seed=7",
                    f"run_dir={tuned}",
                    f"init_from={base / 'bundle'}",
                ],
            )
        )
    assert "output layer kept" in caplog.text
    after = bundle.read(tuned / "bundle")
    assert after.tokenizer.words[: len(before.tokenizer.words)] == before.tokenizer.words
    # fine-tuning moved the weights, starting from the bundle's (not from scratch)
    w0, w1 = before.state["classifier.weight"], after.state["classifier.weight"]
    assert not torch.equal(w0, w1) and (w1 - w0).abs().mean() < w0.abs().mean()
    # a tree model through the (sequence) finetune recipe: a clear error, not a crash in a training step
    wrong = [f"data.train_path={_topics(tmp_path)}", f"init_from={base / 'bundle'}", f"run_dir={tmp_path / 'wrong'}"]
    with pytest.raises(ConfigError, match=r"holds a tree classifier .* but recipe finetune trains a sequence classif"):
        train(compose("finetune", wrong))


@pytest.mark.integration
def test_finetune_recipe_freezes_the_encoder_for_its_first_steps(tmp_path, caplog):
    from nlp_lib import bundle

    first = _jsonl(tmp_path / "sentiment.jsonl", [("a great film", "pos"), ("an awful film", "neg")] * 30)
    base = tmp_path / "base"
    quiet = ["trainer.enable_progress_bar=false", "trainer.max_epochs=1"]
    train(compose("text_classifier", [f"data.train_path={first}", f"run_dir={base}", "data.vocab_size=60", *quiet]))
    source = bundle.read(base / "bundle")
    new = _topics(tmp_path)  # 2 steps/epoch

    def finetune(name, steps):
        run = tmp_path / name
        train(
            compose(
                "finetune",
                [
                    f"data.train_path={new}",
                    f"init_from={base / 'bundle'}",
                    f"run_dir={run}",
                    f"freeze_encoder_steps={steps}",
                    "optim.optimizer.lr=0.01",
                    *quiet,
                ],
            )
        )
        return bundle.read(run / "bundle").state

    encoder = [n for n in source.state if not n.startswith("classifier.")]
    assert len(encoder) > 3
    with caplog.at_level(logging.INFO, logger="nlp_lib"):
        frozen = finetune("frozen", 1000)  # longer than the run: only the new output layer moves
    assert "freeze_encoder_steps=1000" in caplog.text
    assert all(torch.equal(frozen[n], source.state[n]) for n in encoder)
    released = finetune("released", 1)  # step 0 frozen, then everything trains
    moved = [n for n in encoder if not torch.equal(released[n], source.state[n])]
    assert "runner.cells.0.weight_hh" in moved and "embedding.weight" in moved
    assert not torch.equal(released["classifier.weight"], frozen["classifier.weight"])


def test_freeze_encoder_steps_must_be_a_step_count(tmp_path):
    import pytest

    from nlp_lib.errors import ConfigError

    rows = _jsonl(tmp_path / "t.jsonl", [("a b", "x"), ("c d", "y")] * 5)
    cfg = compose(
        "text_classifier", [f"data.train_path={rows}", f"run_dir={tmp_path / 'r'}", "freeze_encoder_steps=-3"]
    )
    with pytest.raises(ConfigError, match="freeze_encoder_steps: expected an integer >= 0, got -3"):
        train(cfg)


@pytest.mark.integration
def test_sst_trained_lstm_fine_tuned_on_a_new_jsonl_task(tmp_path, sst_trees, caplog):
    """Issue bar: a classifier trained on SST sentences, fine-tuned on a new JSONL task with other labels."""
    from nlp_lib import bundle

    base = tmp_path / "sst"
    short = ["trainer.enable_progress_bar=false", "model.embeddings.path=null"]
    train(
        compose(
            "sst_lstm",
            [
                f"data.path={sst_trees}",
                f"run_dir={base}",
                "trainer.max_epochs=1",
                "trainer.limit_train_batches=30",
                "trainer.limit_val_batches=5",
                *short,
            ],
        )
    )
    source = bundle.read(base / "bundle")
    new = _topics(tmp_path)
    tuned = tmp_path / "tuned"
    with caplog.at_level(logging.INFO, logger="nlp_lib"):
        metrics = train(
            compose(
                "finetune",
                [
                    f"data.train_path={new}",
                    f"init_from={base / 'bundle'}",
                    f"run_dir={tuned}",
                    "freeze_encoder_steps=5",
                    "optim.optimizer.lr=0.005",
                    "trainer.max_epochs=5",
                    *short[:1],
                ],
            )
        )
    assert "output layer replaced" in caplog.text and "known tokens keep their vectors" in caplog.text
    assert metrics["val"]["accuracy"] > 0.8  # chance: 1/3
    after = bundle.read(tuned / "bundle")
    old_words = source.tokenizer.words
    assert after.tokenizer.words[: len(old_words)] == old_words  # SST's words keep their ids
    model = nlp_lib.load(tuned / "bundle")
    assert model.predict(["the striker scored twice"])[0]["label"] == "sport"
