"""A sequence tagger bundle predicts a label per token (Python and `nlp-lib predict`)."""

import json
import subprocess
import sys

import pytest
import torch

import nlp_lib
from nlp_lib.cells import LSTMCell
from nlp_lib.data.vocab import WordVocab
from nlp_lib.models import SequenceTagger
from nlp_lib.structure.sequence import SequenceBatch

NOUNS, VERBS = "cat dog bird fish".split(), "runs eats sees jumps".split()
WORDS = WordVocab.build(NOUNS + VERBS + ["the"])
TAGS = ["DET", "NOUN", "VERB"]


def _tag(word: str) -> int:
    return 0 if word == "the" else 1 if word in NOUNS else 2


def _trained_tagger() -> SequenceTagger:
    g = torch.Generator().manual_seed(0)
    sents = []
    for _ in range(64):
        n = int(torch.randint(1, 4, (1,), generator=g))
        words = []
        for _ in range(n):
            words += [
                "the",
                NOUNS[int(torch.randint(4, (1,), generator=g))],
                VERBS[int(torch.randint(4, (1,), generator=g))],
            ]
        sents.append(words)
    batch = SequenceBatch.from_lists([[WORDS.id(w) for w in s] for s in sents])
    gold = torch.full(batch.tokens.shape, -1)
    for b, s in enumerate(sents):
        gold[b, : len(s)] = torch.tensor([_tag(w) for w in s])
    torch.manual_seed(0)
    model = SequenceTagger(vocab_size=WORDS.vocab_size, num_classes=3, cell=LSTMCell, embedding_size=8, hidden_size=8)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(60):
        loss = torch.nn.functional.cross_entropy(model(batch).logits.flatten(0, 1), gold.flatten(), ignore_index=-1)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.mark.integration
def test_tagger_bundle_predicts_a_label_per_token(tmp_path):
    path = nlp_lib.save(_trained_tagger(), tmp_path / "tagger", tokenizer=WORDS, labels=TAGS)
    model = nlp_lib.load(path)
    texts = ["the dog runs", "the bird sees the cat eats", "fish"]
    preds = model.predict(texts, batch_size=2)  # batches of different lengths
    assert [p["tokens"] for p in preds] == [t.split() for t in texts]
    assert [p["labels"] for p in preds] == [[TAGS[_tag(w)] for w in t.split()] for t in texts]
    assert all(0.5 < s <= 1.0 for p in preds for s in p["scores"])

    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    cmd = [
        sys.executable,
        "-m",
        "nlp_lib",
        "predict",
        f"bundle={path}",
        f"input={tmp_path / 'in.txt'}",
        f"output={out}",
    ]
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["input"] for r in rows] == texts
    assert [r["labels"] for r in rows] == [p["labels"] for p in preds]


def test_a_sentencepiece_tagger_labels_each_piece(tmp_path):
    from nlp_lib.data.tokenizers import SentencePieceTokenizer

    texts = [" ".join(["the", n, v]) for n in NOUNS for v in VERBS] * 4
    sp = SentencePieceTokenizer.train(texts, vocab_size=30)
    torch.manual_seed(0)
    model = SequenceTagger(vocab_size=sp.vocab_size, num_classes=3, cell=LSTMCell, embedding_size=8, hidden_size=8)
    path = nlp_lib.save(model.eval(), tmp_path / "sp_tagger", tokenizer=sp, labels=TAGS)
    (pred,) = nlp_lib.load(path).predict(["the dog runs"])
    pieces = [sp.sp.id_to_piece(i) for i in sp.encode("the dog runs")]
    assert pred["tokens"] == pieces and "".join(pieces).replace("\u2581", " ").strip() == "the dog runs"
    assert len(pred["labels"]) == len(pieces) == len(pred["scores"])
    assert set(pred["labels"]) <= set(TAGS)
