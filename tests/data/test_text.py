"""Labelled text read from JSONL, CSV and Hub datasets (nlp_lib.data.text)."""

import json

import pytest

from nlp_lib.data.text import read_labelled_text
from nlp_lib.errors import DataError

GOOD = ["a truly great film", "wonderful acting and story", "I loved it", "great fun"]
BAD = ["a dull mess", "boring and far too long", "I hated it", "awful script"]


def _write_jsonl(path, n=40):
    rows = [{"text": t, "label": "pos"} for t in GOOD] + [{"text": t, "label": "neg"} for t in BAD]
    path.write_text("\n".join(json.dumps(rows[i % len(rows)]) for i in range(n)) + "\n")
    return path


def test_reads_jsonl_and_csv(tmp_path):
    texts, labels = read_labelled_text(_write_jsonl(tmp_path / "a.jsonl", 8))
    assert texts[:2] == GOOD[:2] and labels[0] == "pos"
    csv = tmp_path / "a.csv"
    csv.write_text('review,stars\n"good, very good",5\nbad,1\n')
    texts, labels = read_labelled_text(csv, text_column="review", label_column="stars")
    assert texts == ["good, very good", "bad"] and labels == ["5", "1"]  # CSV fields are strings, as written


def test_bad_files_name_file_column_and_line(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_labelled_text(tmp_path / "missing.jsonl")
    f = _write_jsonl(tmp_path / "a.jsonl", 4)
    with pytest.raises(DataError, match="no column 'review'"):
        read_labelled_text(f, text_column="review")
    csv = tmp_path / "b.csv"
    csv.write_text("text,label\nfine,1\n,0\n")
    with pytest.raises(DataError, match="empty") as info:
        read_labelled_text(csv)
    assert f"{csv}:3" in str(info.value)
    with pytest.raises(DataError, match="unknown file kind"):
        read_labelled_text(tmp_path / "x.txt") if (tmp_path / "x.txt").write_text("x") else None


def test_hub_dataset_names_go_through_datasets_load_dataset(tmp_path):
    """hub:NAME@SPLIT: tested offline with a local folder laid out like a Hub dataset repository."""
    from datasets import ClassLabel, Dataset, Features, Value

    from nlp_lib.data.text_datamodule import TextDataModule

    repo = tmp_path / "my_dataset"
    repo.mkdir()
    feats = Features({"sentence": Value("string"), "polarity": ClassLabel(names=["neg", "pos"])})
    rows = {"sentence": ["a great film", "an awful film"] * 10, "polarity": [1, 0] * 10}
    Dataset.from_dict(rows, features=feats).to_parquet(str(repo / "train.parquet"))
    Dataset.from_dict({k: v[:4] for k, v in rows.items()}, features=feats).to_parquet(str(repo / "test.parquet"))
    texts, labels = read_labelled_text(f"hub:{repo}@train", text_column="sentence", label_column="polarity")
    assert len(texts) == 20 and set(labels) <= {"neg", "pos"}
    dm = TextDataModule(
        train_path=f"hub:{repo}@train",
        test_path=f"hub:{repo}@test",
        text_column="sentence",
        label_column="polarity",
        vocab_size=30,
        cache=False,
    )
    dm.prepare()
    assert dm.label_names == ["neg", "pos"] and len(dm.splits["test"]) == 4
    with pytest.raises(DataError, match=r"hub:NAME\[:CONFIG\]@SPLIT"):
        read_labelled_text(f"hub:{repo}")
    with pytest.raises(DataError, match="cannot load the Hugging Face dataset split"):
        read_labelled_text(f"hub:{repo}@nosuchsplit")
