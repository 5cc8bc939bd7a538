"""Config values are checked against the constructors' own signatures, by key, before any data is
read (nlp_lib/schema.py, nlp_lib/constraints.py); predict's options against the predictor's."""

import json

import pytest
import torch
from conftest import TINY_LISTOPS, run_cli

from nlp_lib.cli import check_run_config, compose, list_recipes, train
from nlp_lib.errors import ConfigError


@pytest.mark.parametrize("recipe", list(list_recipes()))
def test_every_recipe_passes_the_checks(recipe):
    check_run_config(compose(recipe))


@pytest.mark.integration
@pytest.mark.parametrize(
    ("recipe", "override", "message"),
    [
        ("listops_tree_lstm", "data.batch_size=abc", "data.batch_size: expected an integer, got 'abc'"),
        ("listops_tree_lstm", "seed=abc", "seed: expected an integer, got 'abc'"),
        ("sst_tree_lstm", "data.on_error=ignore", "data.on_error: expected one of 'raise', 'skip', got 'ignore'"),
        ("listops_tree_lstm", "model.cell.hidden_size=0", "model.cell.hidden_size: expected an integer >= 1, got 0"),
        ("sst_lstm", "model.dropout=1.5", "model.dropout: expected a number >= 0 and <= 1, got 1.5"),
        ("text_classifier", "data.vocab_size=1", "data.vocab_size: expected an integer >= 8, got 1"),
        ("text_classifier", "data.num_workers=-1", "data.num_workers: expected an integer >= 0, got -1"),
        ("listops_tree_lstm", "optim.optimizer.lr=abc", "optim.optimizer.lr: expected a number"),
        ("scan_seq2seq", "task.test_beam_size=0", "task.test_beam_size: expected an integer >= 1, got 0"),
        ("scan_seq2seq", "task.length_penalty=nan", "task.length_penalty: expected a finite number"),
        ("listops_tree_lstm", "logger=wandb", "Could not find 'logger/wandb'"),
        ("listops_tree_lstm", "callbacks.best.save_top_k=abc", "callbacks.best.save_top_k: expected an integer"),
        ("listops_tree_lstm", "callbacks.best.dirpath=/tmp", "callbacks.best.dirpath: must stay inside the run"),
        ("listops_tree_lstm", "callbacks.last.filename=../x", "callbacks.last.filename: must stay inside the run"),
        ("listops_tree_lstm", "logger.name=../../x", "logger.name: must stay inside the run"),
        ("listops_tree_lstm", "logger.version=/tmp/x", "logger.version: must stay inside the run"),
        ("listops_tree_lstm", "+logger.sub_dir=x", "logger.sub_dir: set by nlp-lib"),
        (
            "listops_tree_lstm",
            "callbacks.last.filename='{epoch].__repr__.__func__.__module__[5}'",
            "callbacks.last.filename: must stay inside the run",
        ),
        ("listops_tree_lstm", "callbacks.last.filename='{epoch:>300000000}'", "callbacks.last.filename: must stay"),
        (
            "listops_tree_lstm",
            "+model.cell.hidden=3",
            "model.cell.hidden: not an argument of nlp_lib.cells.NaryTreeLSTMCell",
        ),
        ("listops_tree_lstm", "+data.bacth_size=3", "data.bacth_size: not an argument of nlp_lib.data.listops_data"),
        ("listops_tree_lstm", "trainer.limit_val_batches=abc", "trainer.limit_val_batches: expected"),
        ("text_classifier", "data=sst", "a sequence classifier (nlp_lib.models.SequenceClassifier) cannot train on"),
        ("sst_tree_lstm", "data=sst_sentences", "a tree classifier (nlp_lib.models.TreeClassifier) cannot train on"),
        ("sst_lstm", "data=sst", "which feeds a tree classifier"),
    ],
)
def test_a_bad_value_is_named_by_its_key_before_anything_is_read(tmp_path, recipe, override, message):
    overrides = [override, f"run_dir={tmp_path / 'run'}"]
    if recipe == "text_classifier" and "data=" not in override:
        overrides.append(f"data.train_path={tmp_path / 'missing.jsonl'}")  # never read: the check comes first
    with pytest.raises(ConfigError) as e:
        train(compose(recipe, overrides))
    assert message in str(e.value)
    assert not (tmp_path / "run" / "config.yaml").exists()


@pytest.mark.integration
def test_the_cli_reports_a_bad_value_without_a_traceback(tmp_path):
    res = run_cli("train", "data.batch_size=abc", f"run_dir={tmp_path / 'r'}")
    assert res.returncode == 2 and "data.batch_size: expected an integer, got 'abc'" in res.stderr
    assert "Traceback" not in res.stderr


def test_sentencepiece_too_small_for_the_text_names_the_key(tmp_path):
    from nlp_lib.data.tokenizers import SentencePieceTokenizer

    with pytest.raises(ConfigError, match="vocab_size=8: sentencepiece cannot train .*data.vocab_size"):
        SentencePieceTokenizer.train(["the quick brown fox jumps over a lazy dog"] * 5, vocab_size=8)


@pytest.mark.integration
def test_a_run_without_validation_trains_and_says_what_it_skipped(tmp_path):
    run = tmp_path / "run"
    metrics = train(compose("listops_tree_lstm", [*TINY_LISTOPS, f"run_dir={run}", "trainer.limit_val_batches=0"]))
    assert metrics["val"] == {"skipped": "trainer.limit_val_batches=0"}
    assert "accuracy" in metrics["test"]
    assert json.loads((run / "metrics.json").read_text())["val"]["skipped"]
    assert (run / "bundle" / "model.safetensors").is_file() and (run / "checkpoints" / "best.ckpt").is_file()


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    from nlp_lib import bundle
    from nlp_lib.cells import GRUCell, LSTMCell
    from nlp_lib.data.vocab import Seq2SeqVocab, WordVocab
    from nlp_lib.models import Seq2Seq, SequenceClassifier

    d = tmp_path_factory.mktemp("bundles")
    torch.manual_seed(0)
    texts = ["jump twice", "walk left", "look"]
    v = Seq2SeqVocab.build(texts)
    s2s = Seq2Seq(
        src_vocab_size=v.vocab_size, tgt_vocab_size=v.vocab_size, cell=GRUCell, embedding_size=4, hidden_size=4
    )
    words = WordVocab.build(" ".join(texts).split())
    cls = SequenceClassifier(vocab_size=words.vocab_size, num_classes=2, cell=LSTMCell, embedding_size=4, hidden_size=3)
    return {
        "seq2seq": bundle.save(s2s, d / "s2s", tokenizer={"source": v, "target": v}),
        "classifier": bundle.save(cls, d / "cls", tokenizer=words, labels=["a", "b"]),
    }


@pytest.mark.integration
@pytest.mark.parametrize(
    ("kind", "args", "message"),
    [
        ("seq2seq", ["batch_size=abc"], "predict: batch_size: expected an integer, got 'abc'"),
        ("seq2seq", ["batch_size=0"], "predict: batch_size: expected an integer >= 1, got '0'"),
        ("seq2seq", ["beam_size=0"], "predict: beam_size: expected an integer >= 1"),
        ("seq2seq", ["beam_size=-3"], "predict: beam_size: expected an integer >= 1"),
        ("seq2seq", ["beam_size=2", "n_best=3"], "n_best (3) cannot exceed beam_size (2)"),
        ("seq2seq", ["max_length=0"], "predict: max_length: expected an integer >= 1"),
        ("seq2seq", ["max_length=-1"], "predict: max_length: expected an integer >= 1"),
        ("seq2seq", ["length_penalty=nan"], "predict: length_penalty: expected a number, got 'nan'"),
        ("seq2seq", ["length_penalty=.inf"], "predict: length_penalty: expected a finite number"),
        ("seq2seq", ["output_precision=float16"], "predict: output_precision: expected one of 'full', 'bfloat16'"),
        ("seq2seq", ["output={tmp}"], "a directory; name a file to write"),
        ("seq2seq", ["output={tmp}/no/such/file.txt"], "does not exist"),
        ("classifier", ["batch_size=abc"], "predict: batch_size: expected an integer"),
        ("classifier", ["beam_size=3"], "apply to seq2seq models only"),
        ("classifier", ["output_precision=bfloat16"], "apply to seq2seq models only"),
    ],
)
def test_predict_options_are_checked_before_anything_is_computed(bundles, tmp_path, kind, args, message):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    res = run_cli("predict", f"bundle={bundles[kind]}", *args, stdin="jump twice\n")
    assert res.returncode == 2, res.stdout[-1000:]
    assert message in res.stderr and "Traceback" not in res.stderr, res.stderr[-2000:]


@pytest.mark.integration
def test_good_predict_options_still_work(bundles, tmp_path):
    out = tmp_path / "hyps.txt"
    res = run_cli(
        "predict",
        f"bundle={bundles['seq2seq']}",
        "beam_size=3",
        "n_best=2",
        "max_length=5",
        "output_precision=bfloat16",
        f"output={out}",
        stdin="look\n",
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert len(out.read_text().splitlines()) == 2


@pytest.mark.parametrize(
    ("callbacks", "logger", "message"),
    [
        ([{"_target_": "x"}], None, "callbacks: expected a mapping"),
        ({"a": "string"}, None, "callbacks.a: expected a node with a _target_"),
        ({}, [{"_target_": "pytorch_lightning.loggers.CSVLogger", "save_dir": "/tmp"}], "logger: expected a node"),
        ({}, {"_target_": "pytorch_lightning.loggers.CSVLogger", "name": "a\x00b"}, "logger.name: must stay"),
        ({"a": {"_target_": "x", "filename": "{a]x}"}}, None, "callbacks.a.filename: must stay"),
    ],
)
def test_callback_and_logger_nodes_are_checked_as_untrusted(callbacks, logger, message):
    from nlp_lib.cli.checks import check_run_outputs

    with pytest.raises(ConfigError, match=message):
        check_run_outputs(callbacks, logger)
    check_run_outputs({"best": {"_target_": "x", "dirpath": "checkpoints", "filename": "{epoch}-{val/loss:.3f}"}}, None)


class _Scaler(__import__("typing").Protocol):  # not runtime-checkable: isinstance() would raise
    def __call__(self, x: float) -> float: ...


class _UsesAProtocol:
    def __init__(self, scale: "_Scaler | str" = "identity", size: int = 1) -> None:
        self.scale, self.size = scale, size


def test_hints_the_checker_cannot_test_and_hostile_values_are_judged_calmly():
    from nlp_lib.constraints import PositiveInt
    from nlp_lib.schema import check_arguments

    node = {"_target_": "x._UsesAProtocol", "scale": "double"}
    check_arguments(_UsesAProtocol, node, "model")  # a Protocol hint: left to the constructor, no TypeError

    def takes(count: PositiveInt = 1, name: str = "") -> None: ...

    with pytest.raises(ConfigError, match=r"^model.count: expected an integer >= 1, got 1000"):
        check_arguments(takes, {"_target_": "f", "count": 10**400}, "model")  # no OverflowError
    with pytest.raises(ConfigError) as e:
        check_arguments(takes, {"_target_": "f", "count": "x" * 500_000}, "model")
    assert len(str(e.value)) < 200  # a hostile value is cut in the message
