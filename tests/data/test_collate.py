"""Sentencepiece with tree models: a word's pieces become a binary subtree under the word's node."""

import json

import pytest
import torch

import nlp_lib
from nlp_lib.cli import compose, train
from nlp_lib.data.collate import collate_trees, encode_tree_subwords
from nlp_lib.structure.brackets import parse_ptb

PIECES = {"unbelievably": [5, 6, 7], "good": [8], "film": [9, 10], "a": [4]}


def test_pieces_become_a_left_branching_subtree_with_the_word_label_on_top():
    tree = parse_ptb("(3 (2 unbelievably) (4 (4 good) (2 film)))")
    e = encode_tree_subwords(tree, PIECES.__getitem__)
    # ((5 6) 7) for "unbelievably", 8 for "good", (9 10) for "film"; inner nodes have no input
    assert e.tokens == [5, 6, -1, 7, -1, 8, 9, 10, -1, -1, -1]
    assert e.parent == (2, 2, 4, 4, 10, 9, 8, 8, 9, 10, -1)
    assert e.labels == [-1, -1, -1, -1, 2, 4, -1, -1, 2, 4, 3]  # the word's label on its subtree's top
    assert e.heights == [0, 0, 1, 0, 2, 0, 0, 0, 1, 2, 3]
    assert all(sum(1 for p in e.parent if p == node) <= 2 for node in range(len(e.parent)))  # still binary
    batch = collate_trees([e, encode_tree_subwords(parse_ptb("(1 (1 film))"), PIECES.__getitem__)])
    assert batch.num_nodes == 11 + 4  # a one-word tree: (9 10) under the root
    # a dependency tree: "unbelievably" heads "a"; its pieces hang under it as one more child
    from nlp_lib.structure.tree import Tree

    dep = encode_tree_subwords(Tree(parent=(1, -1), words=("a", "unbelievably"), labels=(-1, 1)), PIECES.__getitem__)
    assert dep.tokens == [4, 5, 6, -1, 7, -1, -1] and dep.labels == [-1, -1, -1, -1, -1, -1, 1]
    assert dep.parent == (6, 3, 3, 5, 5, 6, -1)  # "a" and the pieces' top under the word's node


@pytest.mark.integration
def test_sst_tree_lstm_with_sentencepiece_trains_saves_and_predicts(tmp_path, sst_trees):
    run = tmp_path / "run"
    metrics = train(
        compose(
            "sst_tree_lstm",
            [
                f"data.path={sst_trees}",
                f"run_dir={run}",
                "data.tokenizer=sentencepiece",
                "data.vocab_size=600",
                "data.vocab_splits=[train]",
                "model.embeddings.path=null",
                "model.cell.input_size=16",
                "model.cell.hidden_size=16",
                "trainer.max_epochs=1",
                "trainer.limit_train_batches=4",
                "trainer.limit_val_batches=2",
                "trainer.enable_progress_bar=false",
            ],
        )
    )
    assert "accuracy" in metrics["val"]
    assert (run / "bundle" / "tokenizer.model").is_file() and not (run / "bundle" / "vocab.json").exists()
    model = nlp_lib.load(run / "bundle")
    assert model.model.embedding.num_embeddings == 600  # the predictor's plain nn.Module
    trees = ["(3 (2 An) (4 (4 extraordinarily) (2 film)))", "(1 (1 dull))"]
    preds = model.predict(trees)
    assert [set(p["probs"]) for p in preds] == [set(json.loads((run / "bundle" / "labels.json").read_text()))] * 2
    assert torch.isfinite(model.logits(trees)).all()
