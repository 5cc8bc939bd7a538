"""Using a model needs neither Lightning nor Hydra, for every model kind and tokenizer: each bundle
is loaded and used in a fresh process where importing pytorch_lightning, lightning or hydra fails."""

import json
import subprocess
import sys

import pytest
import torch

import nlp_lib
from nlp_lib.cells import GRUCell, LSTMCell, NaryTreeLSTMCell
from nlp_lib.data.tokenizers import SentencePieceTokenizer
from nlp_lib.data.vocab import Seq2SeqVocab, WordVocab
from nlp_lib.models import Seq2Seq, SequenceClassifier, SequenceTagger, TreeClassifier

BLOCKED = ("pytorch_lightning", "lightning", "lightning_fabric", "hydra", "omegaconf")

# A fresh process in which the heavy frameworks cannot be imported at all.
FRESH = f"""
import importlib.abc, json, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ImportError(f"{{name}} is blocked in this test")
        return None

sys.meta_path.insert(0, Block())
import nlp_lib
model = nlp_lib.load(sys.argv[1])
inputs = json.loads(sys.argv[2])
if hasattr(model, "translate"):
    out = [h[0]["output"] for h in model.translate(inputs, beam_size=2, max_length=6)]
else:
    out = model.predict(inputs)
print(json.dumps(out))
"""

TEXTS = ["a great film", "an awful dull movie", "long and dull", "great great film"]
SP_TEXTS = TEXTS * 20


def _fresh(bundle_dir, inputs):
    res = subprocess.run(
        [sys.executable, "-c", FRESH, str(bundle_dir), json.dumps(inputs)], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def _words():
    return WordVocab.build(" ".join(TEXTS).split())


def _sentencepiece(specials=False):
    return SentencePieceTokenizer.train(SP_TEXTS, vocab_size=30, specials=specials)


def _tree(tmp_path):
    vocab = _words()
    model = TreeClassifier(vocab_size=vocab.vocab_size, num_classes=3, cell=NaryTreeLSTMCell(4, 5))
    return nlp_lib.save(model, tmp_path / "tree", tokenizer=vocab, labels=["0", "1", "2"]), [
        "(1 (2 a) (0 (1 great) (2 film)))"
    ]


def _classifier(tokenizer):
    def make(tmp_path):
        tok = _words() if tokenizer == "words" else _sentencepiece()
        model = SequenceClassifier(
            vocab_size=tok.vocab_size, num_classes=2, cell=LSTMCell, embedding_size=4, hidden_size=3
        )
        return nlp_lib.save(model, tmp_path / "cls", tokenizer=tok, labels=["neg", "pos"]), TEXTS

    return make


def _tagger(tmp_path):
    tok = _words()
    model = SequenceTagger(vocab_size=tok.vocab_size, num_classes=2, cell=GRUCell, embedding_size=4, hidden_size=3)
    return nlp_lib.save(model, tmp_path / "tag", tokenizer=tok, labels=["O", "X"]), TEXTS


def _seq2seq(tokenizer):
    def make(tmp_path):
        if tokenizer == "words":
            src, tgt = Seq2SeqVocab.build(TEXTS), Seq2SeqVocab.build([t.upper() for t in TEXTS])
        else:
            src = tgt = _sentencepiece(specials=True)
        model = Seq2Seq(
            src_vocab_size=src.vocab_size, tgt_vocab_size=tgt.vocab_size, cell=GRUCell, embedding_size=4, hidden_size=4
        )
        return nlp_lib.save(model, tmp_path / "s2s", tokenizer={"source": src, "target": tgt}), TEXTS

    return make


@pytest.mark.integration
@pytest.mark.parametrize(
    "make",
    [_tree, _classifier("words"), _classifier("sentencepiece"), _tagger, _seq2seq("words"), _seq2seq("sentencepiece")],
    ids=["tree", "classifier-words", "classifier-sentencepiece", "tagger", "seq2seq-words", "seq2seq-sentencepiece"],
)
def test_every_model_kind_loads_and_predicts_with_lightning_and_hydra_unimportable(tmp_path, make):
    import nlp_lib

    torch.manual_seed(0)
    path, inputs = make(tmp_path)
    fresh = _fresh(path, inputs)
    here = nlp_lib.load(path)
    expected = (
        [h[0]["output"] for h in here.translate(inputs, beam_size=2, max_length=6)]
        if hasattr(here, "translate")
        else json.loads(json.dumps(here.predict(inputs)))
    )
    assert fresh == expected


@pytest.mark.integration
def test_the_blocker_does_block():
    """The check above means something: with the blocker, importing Lightning fails."""
    code = FRESH.split("import nlp_lib")[0] + "import pytorch_lightning\n"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode != 0 and "blocked in this test" in res.stderr
