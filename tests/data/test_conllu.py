"""CoNLL-U dependency trees as training data: a label per sentence from a comment, errors named."""

import json
import logging

import pytest
from conftest import conllu_sentence as _sentence
from conftest import write_conllu

import nlp_lib
from nlp_lib.cli import compose, train
from nlp_lib.data.builders import conllu_tree_data
from nlp_lib.errors import DataError


def test_sentences_become_root_labelled_trees_with_named_labels(tmp_path):
    dm = conllu_tree_data(path=str(write_conllu(tmp_path / "ud")), cache=False)
    dm.prepare()
    assert dm.label_names == ["neg", "pos"] and dm.num_classes == 2
    first = dm.splits["train"][0]  # "the film is great": a chain, every word a node with an input
    assert list(first.parent) == [1, 2, 3, -1] and min(first.tokens) >= 0
    assert first.labels == [-1, -1, -1, 1]


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            {"train.conllu": _sentence(["no", "label"], None, 99)},
            r"train.conllu:\d+: sentence at line \d+ \(s99\): no '# label = ...'",
        ),
        ({"dev.conllu": _sentence(["so", "so"], "mixed", 98)}, r"dev.conllu:\d+: .*'mixed' never occurs in training"),
    ],
)
def test_missing_or_unseen_labels_are_named_or_skipped(tmp_path, caplog, extra, message):
    d = write_conllu(tmp_path / "ud", extra=extra)
    with pytest.raises(DataError, match=message):
        conllu_tree_data(path=str(d), cache=False).prepare()
    with caplog.at_level(logging.WARNING):
        dm = conllu_tree_data(path=str(d), cache=False, on_error="skip")
        dm.prepare()
    assert "skipped 1 sentence" in caplog.text
    assert len(dm.splits["train"]) == len(dm.splits["val"]) == 24  # every valid sentence kept


@pytest.mark.integration
def test_conllu_recipe_trains_and_its_bundle_names_the_labels(tmp_path):
    d = write_conllu(tmp_path / "ud")
    run = tmp_path / "run"
    metrics = train(
        compose(
            "conllu_tree_lstm",
            [f"data.path={d}", f"run_dir={run}", "trainer.max_epochs=3", "trainer.enable_progress_bar=false"],
        )
    )
    assert 0 <= metrics["val"]["accuracy"] <= 1
    assert json.loads((run / "bundle" / "labels.json").read_text()) == ["neg", "pos"]
    model = nlp_lib.load(run / "bundle")
    assert model.labels == ["neg", "pos"]


def test_conllu_with_sentencepiece_hangs_pieces_under_inner_words(tmp_path):
    dm = conllu_tree_data(
        path=str(write_conllu(tmp_path / "ud")), tokenizer="sentencepiece", vocab_size=30, cache=False
    )
    dm.prepare()
    sizes = [len(e.parent) for e in dm.splits["train"]]
    assert max(sizes) > 4  # inner words of several pieces got their piece subtrees
    assert all(e.labels[-1] >= 0 and e.parent[-1] == -1 for e in dm.splits["train"])
