"""Fine-tuning from a bundle: init_from=<bundle> keeps the encoder, reuses the tokenizer, swaps the head."""

import json
import logging

import torch
from conftest import TINY_LISTOPS

from nlp_lib.cli import compose, train

TOPICS = {
    "sport": ["the team won the match", "a late goal for the home side", "the striker scored twice"],
    "politics": ["parliament passed the bill", "the minister resigned today", "voters went to the polls"],
    "science": ["the telescope saw a new planet", "cells divide under the microscope", "a new element was found"],
}


def _jsonl(path, rows):
    path.write_text("\n".join(json.dumps({"text": t, "label": y}) for t, y in rows) + "\n")
    return path


def test_text_classifier_fine_tuned_on_new_labels(tmp_path, caplog):
    first = _jsonl(tmp_path / "sentiment.jsonl", [("a great film", "pos"), ("an awful film", "neg")] * 30)
    base = tmp_path / "base"
    common = ["trainer.enable_progress_bar=false", "optim.optimizer.lr=0.01"]
    train(compose("text_classifier", [f"data.train_path={first}", f"run_dir={base}", "data.vocab_size=60", *common]))

    rows = [(t, y) for y, ts in TOPICS.items() for t in ts] * 10
    new = _jsonl(tmp_path / "topics.jsonl", rows)
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
