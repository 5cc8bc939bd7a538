"""``nlp_lib.save(model, path)`` from Python: the bundle rebuilds the same model, in this process and a fresh one."""

import functools
import json
import subprocess
import sys

import pytest
import torch
from torch import nn

import nlp_lib
from nlp_lib.cells import GRUCell, LayerNormLSTMCell, LSTMCell, NaryTreeLSTMCell, RecurrentCellBase
from nlp_lib.cells.rnn import RNNState
from nlp_lib.data.vocab import Seq2SeqVocab, WordVocab
from nlp_lib.errors import BundleError
from nlp_lib.models import Seq2Seq, SequenceClassifier, TreeClassifier
from nlp_lib.predict import Seq2SeqPredictor

WORDS = WordVocab.build("a great film an awful dull long movie".split())


class ScaledTanhCell(RecurrentCellBase):
    """A user's cell with an extra constructor argument (recorded by RecurrentCellBase)."""

    def __init__(self, input_size: int, hidden_size: int, scale: float = 1.0) -> None:
        super().__init__(input_size, hidden_size)
        self.lin = nn.Linear(input_size + hidden_size, hidden_size)
        self.gain = scale  # not stored under its own name: only the recording knows it

    def forward(self, x, state):
        h = torch.tanh(self.gain * self.lin(torch.cat([x, state.h], -1)))
        return h, RNNState(h)


class PlainCell(nn.Module):
    """A tree-free recurrent cell that does not derive from the library: described from attributes."""

    state_type = RNNState

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.lin = nn.Linear(input_size + hidden_size, hidden_size)

    def project(self, x):
        return x

    def initial_state(self, batch, *, device, dtype):
        return RNNState(torch.zeros(batch, self.hidden_size, device=device, dtype=dtype))

    def forward(self, x, state):
        h = torch.tanh(self.lin(torch.cat([x, state.h], -1)))
        return h, RNNState(h)


class ForgetfulCell(PlainCell):
    def __init__(self, input_size: int, hidden_size: int, scale: float = 2.0) -> None:
        super().__init__(input_size, hidden_size)  # `scale` is neither recorded nor stored


TEXTS = ["a great film", "an awful dull movie", "long"]


@pytest.mark.parametrize(
    "cell",
    [LSTMCell, functools.partial(GRUCell), functools.partial(ScaledTanhCell, scale=0.5), PlainCell],
    ids=["class", "partial", "user-cell-extra-arg", "user-plain-module"],
)
def test_sequence_classifier_saved_from_python_loads_back_identical(tmp_path, cell):
    torch.manual_seed(0)
    model = SequenceClassifier(
        vocab_size=WORDS.vocab_size, num_classes=2, cell=cell, embedding_size=6, hidden_size=5, bidirectional=True
    ).eval()
    path = nlp_lib.save(model, tmp_path / "b", tokenizer=WORDS, labels=["neg", "pos"])
    loaded = nlp_lib.load(path, trust=[__name__])  # the user cells live in this test module
    assert type(loaded.model.runner.cells[0]) is type(model.runner.cells[0])
    if isinstance(cell, functools.partial) and cell.keywords:
        assert loaded.model.runner.cells[0].gain == 0.5
    assert torch.equal(loaded.logits(TEXTS), Predictor_logits(model, TEXTS))
    assert loaded.labels == ["neg", "pos"]


def Predictor_logits(model, texts):
    from nlp_lib.predict import predictor_for

    return predictor_for(model)(model, WORDS, ["unused"] * model.num_classes).logits(texts)


@pytest.mark.integration
def test_a_loaded_model_saves_itself_and_a_fresh_process_reads_it(tmp_path):
    torch.manual_seed(1)
    model = TreeClassifier(
        vocab_size=WORDS.vocab_size,
        num_classes=3,
        cell=NaryTreeLSTMCell(4, 6),
        down_cell=NaryTreeLSTMCell(6, 3),
        dropout=0.2,
    )
    first = nlp_lib.save(model, tmp_path / "first", tokenizer=WORDS, labels=["x", "y", "z"], meta={"recipe": "mine"})
    loaded = nlp_lib.load(first)
    second = loaded.save(tmp_path / "second")  # tokenizer, labels and meta come from the bundle
    assert json.loads((second / "meta.json").read_text())["recipe"] == "mine"
    trees = ["(1 (2 a) (2 (3 great) (1 film)))", "(0 (0 dull) (1 movie))"]
    code = (
        "import json, sys, nlp_lib; m = nlp_lib.load(sys.argv[1]); "
        "print(json.dumps(m.logits(json.loads(sys.argv[2])).tolist()))"
    )
    res = subprocess.run([sys.executable, "-c", code, str(second), json.dumps(trees)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    fresh = torch.tensor(json.loads(res.stdout.strip().splitlines()[-1]))
    assert torch.allclose(fresh, loaded.logits(trees), atol=1e-6)
    assert torch.equal(loaded.logits(trees), Predictor_logits(model.eval(), trees))


def test_seq2seq_saves_both_tokenizers(tmp_path):
    torch.manual_seed(2)
    src = Seq2SeqVocab.build(["jump twice", "walk left"])
    tgt = Seq2SeqVocab.build(["JUMP JUMP", "LTURN WALK"])
    model = Seq2Seq(
        src_vocab_size=src.vocab_size,
        tgt_vocab_size=tgt.vocab_size,
        cell=GRUCell,
        decoder_cell=LayerNormLSTMCell,
        embedding_size=8,
        hidden_size=8,
        tie_embeddings=True,
    ).eval()
    path = nlp_lib.save(model, tmp_path / "s2s", tokenizer={"source": src, "target": tgt})
    loaded = nlp_lib.load(path)
    ours = Seq2SeqPredictor(model, {"source": src, "target": tgt}).translate(["jump twice", "walk left"], beam_size=3)
    assert loaded.translate(["jump twice", "walk left"], beam_size=3) == ours


def test_save_says_what_it_cannot_write(tmp_path):
    plain = SequenceClassifier(vocab_size=WORDS.vocab_size, num_classes=2, cell=ForgetfulCell, hidden_size=4)
    nlp_lib.save(plain, tmp_path / "ok", tokenizer=WORDS, labels=["a", "b"])  # a class factory needs no arguments

    tree = TreeClassifier(vocab_size=WORDS.vocab_size, num_classes=2, cell=ForgetfulTreeCell(4, 4))
    with pytest.raises(BundleError, match=r"cell: cannot recover ForgetfulTreeCell's constructor argument 'scale'"):
        nlp_lib.save(tree, tmp_path / "x", tokenizer=WORDS, labels=["a", "b"])

    lam = SequenceClassifier(vocab_size=WORDS.vocab_size, num_classes=2, cell=lambda i, h: LSTMCell(i, h))
    with pytest.raises(BundleError, match=r"SequenceClassifier\.cell: .*lambda"):
        nlp_lib.save(lam, tmp_path / "y", tokenizer=WORDS, labels=["a", "b"])

    model = SequenceClassifier(vocab_size=WORDS.vocab_size, num_classes=2, cell=LSTMCell, hidden_size=4)
    with pytest.raises(BundleError, match="3 labels given, the output layer has 2 classes"):
        nlp_lib.save(model, tmp_path / "z", tokenizer=WORDS, labels=["a", "b", "c"])
    with pytest.raises(BundleError, match="pass tokenizer="):
        nlp_lib.save(model, tmp_path / "z")
    with pytest.raises(BundleError, match=r"pass labels= \(2 names\)"):
        nlp_lib.save(model, tmp_path / "z", tokenizer=WORDS)

    # a value its constructor took but the loader's check refuses (an int for a bool): refused now, not at load
    ints = TreeClassifier(vocab_size=WORDS.vocab_size, num_classes=2, cell=NaryTreeLSTMCell(4, 4), node_logits=1)
    with pytest.raises(BundleError, match=r"node_logits: expected true or false, got 1 \(a bundle must load"):
        nlp_lib.save(ints, tmp_path / "w", tokenizer=WORDS, labels=["a", "b"])
    assert not (tmp_path / "w").exists()


class ScriptCell(LSTMCell):
    """Stands for a cell a user defines in the script they run (its module is ``__main__``)."""


def test_save_warns_when_a_class_lives_in_the_running_script(tmp_path, monkeypatch):
    monkeypatch.setattr(ScriptCell, "__module__", "__main__")
    model = SequenceClassifier(vocab_size=WORDS.vocab_size, num_classes=2, cell=ScriptCell, hidden_size=4)
    with pytest.warns(UserWarning, match=r"ScriptCell is defined in the script being run \(__main__\)"):
        nlp_lib.save(model, tmp_path / "main", tokenizer=WORDS, labels=["a", "b"])


class ForgetfulTreeCell(nn.Module):  # does not derive from the library: nothing recorded
    def __init__(self, input_size: int, hidden_size: int, scale: float = 2.0) -> None:
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size


class KeywordsClassifier(SequenceClassifier):
    """A user's subclass passing its options on through **kwargs."""

    def __init__(self, *, extra_note: str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        self.extra_note = extra_note


def test_kwargs_subclasses_save_and_models_pickle(tmp_path):
    import pickle

    model = KeywordsClassifier(
        extra_note="hi", vocab_size=WORDS.vocab_size, num_classes=2, cell=LSTMCell, hidden_size=4
    ).eval()
    assert model.config()["hidden_size"] == 4 and model.config()["extra_note"] == "hi"
    loaded = nlp_lib.load(nlp_lib.save(model, tmp_path / "kw", tokenizer=WORDS, labels=["a", "b"]), trust=[__name__])
    assert type(loaded.model) is KeywordsClassifier and loaded.model.extra_note == "hi"
    # pickling keeps the record as config; a lambda cell factory pickles as before (no record)
    again = pickle.loads(pickle.dumps(model))
    assert again.config() == model.config()
    lam = SequenceClassifier(vocab_size=WORDS.vocab_size, num_classes=2, cell=lambda i, h: LSTMCell(i, h))
    assert isinstance(pickle.loads(pickle.dumps(lam)), SequenceClassifier)
