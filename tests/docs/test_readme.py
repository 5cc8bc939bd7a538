"""The README's Python examples run as written (the bundle one against a bundle a tiny run writes)."""

import re

import pytest
from conftest import TINY_LISTOPS, doc_blocks


def _blocks() -> list[str]:
    return doc_blocks("README.md")


def test_model_in_your_own_project_example_runs():
    (block,) = [b for b in _blocks() if "TreeClassifier(" in b]
    ns: dict = {}
    exec(compile(block, "README.md", "exec"), ns)  # noqa: S102 - our own documentation
    assert ns["logits"].shape == (2, 5)


@pytest.mark.integration
def test_bundle_example_runs_on_a_real_bundle(tmp_path):
    from nlp_lib.cli import compose, train

    run = tmp_path / "run"
    train(compose("listops_tree_lstm", [*TINY_LISTOPS, f"run_dir={run}"]))
    (block,) = [b for b in _blocks() if "nlp_lib.load(" in b]
    block = block.replace("runs/sst_tree_lstm/<time>/bundle", str(run / "bundle"))
    from nlp_lib.data.listops import generate_listops

    expr = generate_listops(1, seed=1, max_depth=2)[0].expression
    block = re.sub(r"sst\.logits\(\[\.\.\.\]\).*", f"logits = sst.logits([{expr!r}])", block)
    ns: dict = {}
    exec(compile(block, "README.md", "exec"), ns)  # noqa: S102
    pred = ns["sst"].predict(["(3 (2 A) (4 (4 fine) (2 film)))"])
    assert pred[0]["label"] in ns["sst"].labels and abs(sum(pred[0]["probs"].values()) - 1) < 1e-5
    assert ns["logits"].shape == (1, 10) and not ns["sst"].model.training


def test_seq2seq_example_runs():
    (block,) = [b for b in _blocks() if "Seq2Seq(" in b]
    ns: dict = {}
    exec(compile(block, "README.md", "exec"), ns)  # noqa: S102 - our own documentation
    assert len(ns["hyps"]) == 2 and all(len(h) == 2 for h in ns["hyps"])
    assert all(isinstance(t, int) for t in ns["best"])
