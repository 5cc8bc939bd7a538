"""TreeClassifier: what it returns, the optional top-down pass, and outputs that do not depend on the batch.

(Batched = node by node, outputs and gradients, for every built-in cell: tests/modules/test_tree_runner.py.)
"""

import dataclasses
import random
import re

import pytest
import torch

from nlp_lib.cells import ChildSumTreeGRUCell, ChildSumTreeLSTMCell, NaryTreeLSTMCell
from nlp_lib.models import TreeClassifier
from nlp_lib.structure import TreeBatch
from nlp_lib.structure.random_trees import random_binary_tree

VOCAB, C = 12, 4  # a small vocabulary: words repeat within a batch


def _trees(n=5, seed=0):
    rng = random.Random(seed)
    return [random_binary_tree(rng.randint(1, 15), rng, VOCAB) for _ in range(n)]


def _batch(trees):
    return TreeBatch.from_arrays([t.parent for t in trees], [[int(w[1:]) if w else -1 for w in t.words] for t in trees])


def _model(**kw):
    torch.manual_seed(0)
    args = dict(vocab_size=VOCAB, num_classes=C, cell=NaryTreeLSTMCell(6, 5))
    args.update(kw)
    return TreeClassifier(**args).double().eval()


def test_outputs_are_a_row_per_tree_and_optionally_per_node():
    trees = _trees()
    batch = _batch(trees)
    out = _model()(batch)
    assert out.logits.shape == (len(trees), C) and out.root_hidden.shape == (len(trees), 5)
    assert out.node_logits is None
    model = _model(node_logits=True)
    out = model(batch)
    assert out.node_logits.shape == (batch.num_nodes, C)
    torch.testing.assert_close(out.node_logits[batch.roots], out.logits)  # the roots' rows are the tree labels
    h = model.runner(batch, model.embedding(batch.tokens[batch.input_positions]), batch.input_positions).h
    torch.testing.assert_close(out.root_hidden, h[batch.roots])
    assert model.embedding.embedding_dim == model.cell.input_size and model.cell is model.runner.cell


def test_a_tree_gets_the_same_logits_alone_and_in_a_batch():
    trees = _trees(6, seed=1)
    model = _model(cell=ChildSumTreeLSTMCell(6, 5), node_logits=True)
    together = model(_batch(trees))
    for i, t in enumerate(trees):
        alone = model(_batch([t]))
        torch.testing.assert_close(together.logits[i], alone.logits[0], atol=1e-12, rtol=0)


def test_each_distinct_word_projected_once_equals_every_occurrence_in_eval_with_dropout():
    batch = _batch(_trees(8, seed=2))
    assert batch.unique_tokens.numel() < batch.input_positions.numel()
    model = _model(dropout=0.5)  # eval: dropout off, the distinct-word path is taken
    plain = dataclasses.replace(batch, unique_tokens=None, token_inverse=None)
    torch.testing.assert_close(model(batch).logits, model(plain).logits, atol=1e-12, rtol=0)


def test_a_top_down_pass_adds_its_state_to_every_node():
    batch = _batch(_trees())
    model = _model(cell=ChildSumTreeGRUCell(6, 5), down_cell=ChildSumTreeGRUCell(5, 3), node_logits=True)
    out = model(batch)
    assert out.root_hidden.shape == (batch.num_trees, 5 + 3) and model.classifier.in_features == 8
    model.mode = "recursive"  # switches both passes
    assert model.runner.mode == model.down_runner.mode == "recursive"
    torch.testing.assert_close(model(batch).node_logits, out.node_logits, atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match=r"down_cell.input_size \(4\) must equal cell.hidden_size \(5\)"):
        _model(down_cell=ChildSumTreeGRUCell(4, 3))


def test_roots_take_the_first_root_classes_and_a_bundle_keeps_them(tmp_path):
    import nlp_lib
    from nlp_lib.data.vocab import WordVocab

    trees = _trees()
    batch = _batch(trees)
    model = _model(node_logits=True, root_classes=2)
    out = model(batch)
    assert out.logits.shape == (len(trees), 2) and out.node_logits.shape == (batch.num_nodes, C)
    torch.testing.assert_close(out.node_logits[batch.roots, :2], out.logits)
    with pytest.raises(ValueError, match=r"root_classes \(5\) must be between 1 and num_classes \(4\)"):
        _model(root_classes=5)
    # a plain-module user reads it back from a bundle: two-way predictions over the first two names
    vocab = WordVocab(["<unk>"] + [f"w{i}" for i in range(1, VOCAB)])
    nlp_lib.save(model.float(), tmp_path / "b", tokenizer=vocab, labels=["neg", "pos", "neutral", "x"])
    loaded = nlp_lib.load(tmp_path / "b")
    assert loaded.model.root_classes == 2 and loaded.model.num_classes == C
    (pred,) = loaded.predict(["(1 (1 w1) (1 w2))"])
    assert pred["label"] in ("neg", "pos") and set(pred["probs"]) == {"neg", "pos"}
    assert abs(sum(pred["probs"].values()) - 1) < 1e-6

    # a hand-edited bundle: root_classes checked against the model's signature, the file named
    import yaml

    from nlp_lib.errors import BundleError

    config = tmp_path / "b" / "config.yaml"
    for bad in (True, 1.5, "2", 0):
        edited = {**yaml.safe_load(config.read_text()), "root_classes": bad}
        config.write_text(yaml.safe_dump(edited))
        with pytest.raises(
            BundleError, match=rf"^{re.escape(str(config))}: root_classes: expected an integer >= 1 or null, got "
        ):
            nlp_lib.load(tmp_path / "b")
