"""TextDataModule: files -> sentencepiece ids -> batches; the text_classifier recipe (nlp_lib.data.text_datamodule)."""

import json

import pytest
from conftest import run_cli

from nlp_lib.cli import compose, train
from nlp_lib.data.text_datamodule import TextDataModule
from nlp_lib.errors import DataError

GOOD = ["a truly great film", "wonderful acting and story", "I loved it", "great fun"]
BAD = ["a dull mess", "boring and far too long", "I hated it", "awful script"]


def _write_jsonl(path, n=40):
    rows = [{"text": t, "label": "pos"} for t in GOOD] + [{"text": t, "label": "neg"} for t in BAD]
    path.write_text("\n".join(json.dumps(rows[i % len(rows)]) for i in range(n)) + "\n")
    return path


@pytest.mark.integration
def test_text_classifier_recipe_trains_and_saves_its_tokenizer(tmp_path):
    data = _write_jsonl(tmp_path / "train.jsonl", 80)
    run_dir = tmp_path / "run"
    overrides = [f"data.train_path={data}", f"run_dir={run_dir}", "data.vocab_size=60", "trainer.max_epochs=2"]
    metrics = train(compose("text_classifier", [*overrides, "trainer.enable_progress_bar=false"]))
    assert 0 <= metrics["val"]["accuracy"] <= 1 and metrics["train"]["tokens_per_s"] > 0
    assert (run_dir / "tokenizer.model").is_file()
    assert json.loads((run_dir / "labels.json").read_text()) == ["neg", "pos"]


@pytest.mark.integration
def test_text_classifier_missing_column_is_a_clean_error(tmp_path):
    data = _write_jsonl(tmp_path / "train.jsonl", 10)
    res = run_cli(
        "train", "recipe=text_classifier", f"data.train_path={data}", "data.label_column=stars", f"run_dir={tmp_path}/r"
    )
    assert res.returncode == 2 and "no column 'stars'" in res.stderr and str(data) in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.integration
def test_one_label_and_no_validation_share_are_clean_errors(tmp_path):
    one = tmp_path / "one.jsonl"
    one.write_text("".join(json.dumps({"text": t, "label": "pos"}) + "\n" for t in GOOD * 5))
    res = run_cli("train", "recipe=text_classifier", f"data.train_path={one}", f"run_dir={tmp_path}/r")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "data.train_path: every training row has the label 'pos'" in res.stderr and str(one) in res.stderr
    for share in (0, 1.0):  # no validation rows, or no training rows: refused before any file is read
        with pytest.raises(DataError, match=rf"data.val_fraction: must lie between 0 and 1 .* got {share}"):
            TextDataModule(train_path=str(tmp_path / "any.jsonl"), val_fraction=share)


def test_text_data_globs_cache_and_token_budget(tmp_path, caplog):
    import logging

    rows = [("a fine warm film " * (1 + i % 5), "pos" if i % 2 else "neg") for i in range(60)]
    for k in range(3):  # three shards of one training split
        (tmp_path / f"train-{k}.jsonl").write_text(
            "\n".join(json.dumps({"text": t, "label": y}) for t, y in rows[k * 20 : (k + 1) * 20]) + "\n"
        )

    def make(**kw):
        return TextDataModule(
            train_path=str(tmp_path / "train-*.jsonl"), vocab_size=30, cache_dir=str(tmp_path / "c"), **kw
        )

    first = make()
    first.prepare()
    assert sum(len(v) for v in first.splits.values()) == 60  # every shard read
    with caplog.at_level(logging.INFO, logger="nlp_lib"):
        second = make()
        second.prepare()
    assert "loaded from the cache" in caplog.text
    assert second.splits == first.splits and second.label_names == first.label_names == ["neg", "pos"]
    assert second.tokenizer.encode("a fine film") == first.tokenizer.encode("a fine film")
    with pytest.raises(DataError, match=r"data.train_path: no file matches the pattern"):
        TextDataModule(train_path=str(tmp_path / "nothing-*.jsonl")).prepare()

    budget = make(token_budget=40)
    budget.prepare()
    batches = list(budget.train_dataloader())
    assert sum(len(b.lengths) for b in batches) == len(budget.splits["train"])
    assert all(b.tokens.numel() <= 40 or len(b.lengths) == 1 for b in batches)


@pytest.mark.integration
def test_text_classifier_trains_with_a_token_budget(tmp_path):
    f = tmp_path / "t.jsonl"
    f.write_text("\n".join(json.dumps({"text": t, "label": y}) for t, y in [("good one", "p"), ("bad one", "n")] * 20))
    metrics = train(
        compose(
            "text_classifier",
            [
                f"data.train_path={f}",
                f"run_dir={tmp_path / 'run'}",
                "data.vocab_size=30",
                "data.token_budget=24",
                "trainer.max_epochs=1",
                "trainer.enable_progress_bar=false",
            ],
        )
    )
    assert metrics["epochs"] == 1 and "accuracy" in metrics["val"]
