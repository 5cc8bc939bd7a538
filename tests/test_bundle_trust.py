"""Untrusted bundles: loading one never runs code it names, and every bad file is a BundleError
naming the file (nlp_lib/trust.py, nlp_lib/bundle.py)."""

import json
import os
import shutil
import stat
import sys
import textwrap

import pytest
import torch
import yaml
from conftest import run_cli

import nlp_lib
from nlp_lib import bundle
from nlp_lib.cells import LSTMCell
from nlp_lib.data.vocab import WordVocab
from nlp_lib.errors import BundleError
from nlp_lib.models import SequenceClassifier

WORDS = WordVocab.build("a great film an awful dull movie".split())


@pytest.fixture
def good(tmp_path):
    """A small, valid sequence-classifier bundle (5 classes)."""
    torch.manual_seed(0)
    model = SequenceClassifier(
        vocab_size=WORDS.vocab_size, num_classes=5, cell=LSTMCell, embedding_size=4, hidden_size=3
    )
    return nlp_lib.save(model, tmp_path / "good", tokenizer=WORDS, labels=list("abcde"))


def _with_config(src, dest, config):
    shutil.copytree(src, dest)
    (dest / "config.yaml").write_text(yaml.safe_dump(config) if not isinstance(config, str) else config)
    return dest


def _config(b):
    return yaml.safe_load((b / "config.yaml").read_text())


# ----------------------------------------------------------------------------- code in config.yaml


def _payloads(marker, victim):
    touch = f"touch {marker}"
    return {
        "os.system": {"_target_": "os.system", "command": touch},
        "cell subprocess.Popen": "cell",
        "nested check_output": {
            "_target_": "nlp_lib.models.SequenceClassifier",
            "vocab_size": 8,
            "num_classes": 5,
            "cell": {"_target_": "nlp_lib.cells.LSTMCell", "_partial_": True},
            "extra": [{"x": {"_target_": "subprocess.check_output", "args": ["sh", "-c", touch]}}],
        },
        "shutil.rmtree": {"_target_": "shutil.rmtree", "path": str(victim)},
        "builtins.eval": {"_target_": "builtins.eval", "source": f"open({str(marker)!r}, 'w')"},
        "a function of nlp_lib": {"_target_": "nlp_lib.models.decoding.beam_search"},
        "a class found through an allowed module": {"_target_": "nlp_lib.models.base.Path", "x": str(marker)},
        "hydra's _args_": {"_target_": "nlp_lib.cells.LSTMCell", "_args_": [4, 3]},
    }


@pytest.mark.integration
@pytest.mark.parametrize(
    "name",
    [
        "os.system",
        "cell subprocess.Popen",
        "nested check_output",
        "shutil.rmtree",
        "builtins.eval",
        "a function of nlp_lib",
        "a class found through an allowed module",
        "hydra's _args_",
    ],
)
def test_a_bundle_naming_code_runs_nothing(good, tmp_path, name):
    marker, victim = tmp_path / "marker", tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("x")
    payload = _payloads(marker, victim)[name]
    if payload == "cell":
        payload = {
            **_config(good),
            "cell": {"_target_": "subprocess.Popen", "_partial_": True, "args": ["touch", str(marker)]},
        }
    b = _with_config(good, tmp_path / "evil", payload)
    with pytest.raises(BundleError) as e:
        nlp_lib.load(b)
    assert "config.yaml" in str(e.value)
    assert not marker.exists() and (victim / "keep.txt").is_file()
    # the command line refuses it the same way (exit 2, no traceback)
    res = run_cli("predict", f"bundle={b}", stdin="a great film\n")
    assert res.returncode == 2 and "Traceback" not in res.stderr and "config.yaml" in res.stderr
    assert not marker.exists() and (victim / "keep.txt").is_file()


def test_a_target_outside_the_allow_list_is_never_imported(good, tmp_path, monkeypatch):
    """The import of a module can run code: a refused target's module is not imported at all."""
    pkg = tmp_path / "pkgs"
    pkg.mkdir()
    marker = tmp_path / "imported"
    (pkg / "evil_cells.py").write_text(f"open({str(marker)!r}, 'w').close()\nclass Cell: pass\n")
    monkeypatch.syspath_prepend(str(pkg))
    b = _with_config(
        good, tmp_path / "evil", {**_config(good), "cell": {"_target_": "evil_cells.Cell", "_partial_": True}}
    )
    with pytest.raises(BundleError, match=r"evil_cells\.Cell.*trust=\['evil_cells'\]"):
        nlp_lib.load(b)
    assert not marker.exists() and "evil_cells" not in sys.modules
    with pytest.raises(BundleError, match="evil_cells"):  # a prefix is matched at dots, not as text
        nlp_lib.load(b, trust=["evil_cell"])
    assert not marker.exists()


USER_CELL = textwrap.dedent(
    """
    from torch import nn
    from nlp_lib.cells import LSTMCell


    class MyCell(LSTMCell):
        pass
    """
)


@pytest.mark.integration
def test_a_users_cell_loads_when_trusted(tmp_path, monkeypatch):
    pkg = tmp_path / "pkgs" / "my_pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "cells.py").write_text(USER_CELL)
    monkeypatch.syspath_prepend(str(pkg.parent))
    from my_pkg.cells import MyCell

    model = SequenceClassifier(vocab_size=WORDS.vocab_size, num_classes=2, cell=MyCell, embedding_size=4, hidden_size=3)
    b = nlp_lib.save(model, tmp_path / "mine", tokenizer=WORDS, labels=["n", "p"])
    with pytest.raises(BundleError, match=r"my_pkg\.cells\.MyCell.*trust=\['my_pkg\.cells'\]"):
        nlp_lib.load(b)
    for trusted in ({"trust": ["my_pkg.cells"]}, {"trust": ["my_pkg"]}, {"trust_code": True}):
        loaded = nlp_lib.load(b, **trusted)
        assert type(loaded.model.runner.cells[0]) is MyCell
    res = run_cli("predict", f"bundle={b}", "trust=my_pkg.cells", stdin="a great film\n", cwd=pkg.parent)
    assert res.returncode == 0, res.stderr[-2000:]
    res = run_cli("predict", f"bundle={b}", "trust_code=maybe", stdin="a\n")
    assert res.returncode == 2 and "trust_code: must be true or false" in res.stderr


# ----------------------------------------------------------------------------- hostile files


ALIAS_BOMB = "\n".join(
    ["a: &a ['x','x','x','x','x','x','x','x','x']"]
    + [f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)}]" for i in range(9)]
    + ["_target_: nlp_lib.models.SequenceClassifier"]
)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("config alias bomb", ALIAS_BOMB, "aliases"),
        ("config nested 50k deep", "[" * 50_000 + "]" * 50_000, "nested deeper"),
        ("config empty", "", "expected a mapping at the top level, got empty"),
        ("config a list", "- 1\n- 2\n", "expected a mapping at the top level, got a list"),
        ("config a string", "hello\n", "got a str"),
        ("config a python tag", "!!python/object/apply:os.system ['true']\n", "not valid YAML"),
        ("config a binary value", "_target_: nlp_lib.cells.LSTMCell\nx: !!binary aGVsbG8=\n", "bytes values"),
        ("config non-string key", "_target_: nlp_lib.cells.LSTMCell\n1: 2\n", "is not a string"),
        ("config not utf-8", b"\xff\xfe_target_: x".decode("latin-1"), "not UTF-8"),
    ],
)
def test_a_hostile_config_yaml_is_a_bundle_error(good, tmp_path, name, text, message):
    b = tmp_path / "b"
    shutil.copytree(good, b)
    (b / "config.yaml").write_bytes(text.encode("latin-1") if name == "config not utf-8" else text.encode())
    with pytest.raises(BundleError, match=message) as e:
        nlp_lib.load(b)
    assert "config.yaml" in str(e.value)


@pytest.mark.parametrize(
    ("file", "content", "message"),
    [
        ("meta.json", "[]", "expected a mapping"),
        ("meta.json", '""', "got a str"),
        ("meta.json", "", "not valid JSON"),
        ("meta.json", "[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ("meta.json", '{"format_version": "1", "tokenizer": "WordVocab"}', "format_version must be a whole number"),
        ("meta.json", '{"format_version": true, "tokenizer": "WordVocab"}', "format_version must be a whole number"),
        ("meta.json", '{"format_version": 1, "tokenizer": "os.system"}', r'tokenizer: expected \{"class"'),
        ("labels.json", '{"a": 1}', "expected a list"),
        ("labels.json", '["a", {"x": 1}, "c", "d", "e"]', "label 1 is"),
        ("labels.json", '["a", "b"]', "2 labels, but the model in config.yaml has 5 classes"),
        ("vocab.json", "[]", "vocab.json"),
        ("vocab.json", '{"words": ["<unk>", 3], "lowercase": false}', r"words\[1\]"),
        ("vocab.json", '{"words": ["<unk>", "a"], "lowercase": "no"}', "lowercase must be"),
        (
            "vocab.json",
            json.dumps({"words": ["<unk>", *[f"w{i}" for i in range(100)]], "lowercase": False}),
            "embedding has only",
        ),
    ],
)
def test_bad_json_files_are_named(good, file, content, message):
    (good / file).write_text(content)
    with pytest.raises(BundleError, match=message) as e:
        nlp_lib.load(good)
    assert file in str(e.value) or "tokenizer has" in str(e.value)


def test_files_that_are_not_regular_or_lie_outside_are_refused(good, tmp_path):
    outside = tmp_path / "secret.json"
    outside.write_text('["a", "b", "c", "d", "e"]')
    (good / "labels.json").unlink()
    (good / "labels.json").symlink_to(outside)
    with pytest.raises(BundleError, match="labels.json: a link to .*outside"):
        nlp_lib.load(good)
    (good / "labels.json").unlink()
    os.mkfifo(good / "labels.json")  # opening a FIFO to read would block forever
    with pytest.raises(BundleError, match="labels.json: a FIFO, not a regular file"):
        nlp_lib.load(good)
    (good / "labels.json").unlink()
    (good / "labels.json").mkdir()
    with pytest.raises(BundleError, match="labels.json: a directory"):
        nlp_lib.load(good)
    (good / "labels.json").rmdir()
    (good / "labels.json").symlink_to("/dev/zero")
    with pytest.raises(BundleError, match="labels.json"):
        nlp_lib.load(good)
    (good / "labels.json").unlink()
    with pytest.raises(BundleError, match="labels.json: missing"):
        nlp_lib.load(good)


def test_a_file_over_its_size_limit_is_refused_before_it_is_read(good, monkeypatch):
    monkeypatch.setattr(WordVocab, "bundle_limit", 20)
    with pytest.raises(BundleError, match=r"vocab.json: \d+ bytes, over the 20-byte limit"):
        nlp_lib.load(good)


def test_missing_or_corrupt_tokenizers_are_named(tmp_path):
    from nlp_lib.data.tokenizers import SentencePieceTokenizer

    tok = SentencePieceTokenizer.train(["a great film", "an awful dull movie", "long and dull"] * 20, vocab_size=30)
    model = SequenceClassifier(vocab_size=tok.vocab_size, num_classes=2, cell=LSTMCell, embedding_size=4, hidden_size=3)
    b = nlp_lib.save(model, tmp_path / "sp", tokenizer=tok, labels=["n", "p"])
    (b / "tokenizer.model").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(BundleError, match="tokenizer.model: not a sentencepiece model"):
        nlp_lib.load(b)
    (b / "tokenizer.model").unlink()
    with pytest.raises(BundleError, match="tokenizer.model: missing"):
        nlp_lib.load(b)


def test_weights_are_written_with_the_mode_of_the_other_files(good):
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in good.iterdir()}
    assert modes["model.safetensors"] == modes["config.yaml"] == modes["labels.json"], modes


# ----------------------------------------------------------------------------- run directories


def _evil_run(tmp_path, marker):
    run = tmp_path / "run"
    (run / "bundle").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.ckpt").write_bytes(b"x")
    config = {"seed": 0, "data": {"_target_": "os.system", "command": f"touch {marker}"}}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    return run


@pytest.mark.integration
def test_eval_and_resume_of_a_handed_over_run_run_no_code(tmp_path):
    marker = tmp_path / "marker"
    run = _evil_run(tmp_path, marker)
    for args in (("eval", f"run={run}"), ("train", f"resume={run}")):
        res = run_cli(*args)
        assert res.returncode == 2, res.stderr[-2000:]
        assert "data._target_" in res.stderr and "os.system" in res.stderr and "Traceback" not in res.stderr
        assert not marker.exists()
    # an override cannot smuggle one in either
    (run / "config.yaml").write_text(yaml.safe_dump({"seed": 0, "data": {"path": "x"}}))
    res = run_cli("eval", f"run={run}", f"data.path={{_target_: os.system, command: 'touch {marker}'}}")
    assert res.returncode == 2 and "os.system" in res.stderr and not marker.exists()


def test_init_from_a_hostile_bundle_runs_no_code(good, tmp_path):
    from conftest import TINY_LISTOPS

    from nlp_lib.cli import compose, train

    marker = tmp_path / "marker"
    evil = _with_config(good, tmp_path / "evil", {"_target_": "os.system", "command": f"touch {marker}"})
    cfg = compose("listops_tree_lstm", [*TINY_LISTOPS, f"init_from={evil}", f"run_dir={tmp_path / 'run'}"])
    with pytest.raises(BundleError, match="os.system"):
        train(cfg)
    assert not marker.exists()


# ----------------------------------------------------------------------------- found by review


def _pickle_bomb(tmp_path, marker):
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps(Evil()))
    return path


@pytest.mark.integration
@pytest.mark.parametrize(
    "hidden",
    [
        "through an allowed module's attribute",  # Hydra walks attributes: this is torch.load
        "through a module's os attribute",
        "in an oc.create interpolation",
        "in an oc.decode interpolation",
    ],
)
def test_a_run_config_cannot_hide_a_target_from_the_check(tmp_path, hidden):
    marker = tmp_path / "marker"
    bomb = _pickle_bomb(tmp_path, marker)
    value = {
        "through an allowed module's attribute": {
            "_target_": "torch.nn.modules.module.torch.load",
            "f": str(bomb),
            "weights_only": False,
        },
        "through a module's os attribute": {"_target_": "nlp_lib.tasks.checkpoint_io.os.makedirs", "name": str(marker)},
        "in an oc.create interpolation": f"${{oc.create:{{_target_: os.makedirs, name: {marker}}}}}",
        "in an oc.decode interpolation": f"${{oc.decode:'{{_target_: os.makedirs, name: {marker}}}'}}",
    }[hidden]
    run = _evil_run(tmp_path, marker)
    config = {"seed": 0, "data": {"_target_": "nlp_lib.data.listops_data", "cache_dir": value}}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    for args in (("eval", f"run={run}"), ("train", f"resume={run}")):
        res = run_cli(*args)
        assert res.returncode == 2, res.stderr[-2000:]
        assert "data.cache_dir" in res.stderr and "Traceback" not in res.stderr, res.stderr[-2000:]
        assert not marker.exists()


def test_a_bundle_cannot_hide_a_target_from_init_from(good, tmp_path):
    from conftest import TINY_LISTOPS

    from nlp_lib.cli import compose, train

    marker = tmp_path / "marker"
    bomb = _pickle_bomb(tmp_path, marker)
    for i, cell in enumerate(
        [
            f"${{oc.create:{{_target_: torch.load, f: {bomb}, weights_only: false}}}}",
            {"_target_": "nlp_lib.models.seq2seq.torch.load", "f": str(bomb), "weights_only": False},
        ]
    ):
        evil = _with_config(good, tmp_path / f"evil{i}", {**_config(good), "cell": cell})
        with pytest.raises(BundleError, match="cell"):
            nlp_lib.load(evil)
        cfg = compose("listops_tree_lstm", [*TINY_LISTOPS, f"init_from={evil}", f"run_dir={tmp_path / f'run{i}'}"])
        with pytest.raises(BundleError, match="cell"):
            train(cfg)
        assert not marker.exists()


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    from conftest import TINY_LISTOPS

    from nlp_lib.cli import compose, train

    run = tmp_path_factory.mktemp("finished") / "run"
    train(compose("listops_tree_lstm", [*TINY_LISTOPS, "trainer.max_epochs=1", f"run_dir={run}"]))
    return run


@pytest.mark.integration
@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"seed": "abc"}, "seed: expected an integer"),
        ({"data": None}, "data: expected the run's data config"),
        ({"task": None}, "task: expected the run's task config"),
        (
            {"task": {"_target_": "nlp_lib.tasks.TreeClassificationTask", "node_loss_weight": "x"}},
            "task.node_loss_weight",
        ),
    ],
)
def test_eval_of_a_damaged_run_config_names_the_key(finished_run, tmp_path, edit, message):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    config = {**yaml.safe_load((run / "config.yaml").read_text()), **edit}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    res = run_cli("eval", f"run={run}")
    assert res.returncode == 2 and message in res.stderr and "Traceback" not in res.stderr, res.stderr[-2000:]


def test_a_tokenizer_entry_of_the_wrong_type_and_huge_values_give_short_errors(good):
    meta = json.loads((good / "meta.json").read_text())
    (good / "meta.json").write_text(json.dumps({**meta, "tokenizer": {"source": [1], "target": [2]}}))
    with pytest.raises(BundleError, match=r"meta.json: tokenizer.source: expected \{\"class\""):
        nlp_lib.load(good)
    (good / "meta.json").write_text(json.dumps({**meta, "tokenizer": {"source": [1], "extra": [2]}}))
    with pytest.raises(BundleError, match="meta.json: tokenizer must name a source and a target"):
        nlp_lib.load(good)
    (good / "meta.json").write_text(json.dumps(meta))
    (good / "labels.json").write_text(json.dumps(["a", {"x": "y" * 1_000_000}, "c", "d", "e"]))
    with pytest.raises(BundleError, match="label 1 is") as e:
        nlp_lib.load(good)
    assert len(str(e.value)) < 400


# ----------------------------------------------------------------------------- tokenizer by name


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"class": "builtins.eval", "file": "vocab.json"}, r"tokenizer.class: refusing to build 'builtins.eval'"),
        ({"class": "nlp_lib.trust.Trust", "file": "vocab.json"}, r"refusing to build 'nlp_lib.trust.Trust'"),
        ({"class": "nlp_lib.data.vocab.WordVocab", "file": "../good/vocab.json"}, "not a file name inside"),
        ({"class": "nlp_lib.data.vocab.WordVocab", "file": "nowhere.json"}, "nowhere.json: missing"),
        ("NoSuchKind", r"tokenizer: expected \{"),
    ],
)
def test_the_tokenizer_class_is_allow_listed_and_its_file_stays_inside(good, entry, message, monkeypatch):
    imported = []
    monkeypatch.setattr("builtins.eval", lambda *a: imported.append(a))
    meta = json.loads((good / "meta.json").read_text())
    (good / "meta.json").write_text(json.dumps({**meta, "tokenizer": entry}))
    with pytest.raises(BundleError, match=message):
        nlp_lib.load(good)
    assert imported == []


def test_meta_records_the_tokenizer_by_importable_name_and_format_1_still_loads(good):
    meta = json.loads((good / "meta.json").read_text())
    assert meta["format_version"] == bundle.FORMAT_VERSION == 2
    assert meta["tokenizer"] == {"class": "nlp_lib.data.vocab.WordVocab", "file": "vocab.json"}
    expected = nlp_lib.load(good).logits(["a great film"])
    (good / "meta.json").write_text(json.dumps({**meta, "format_version": 1, "tokenizer": "WordVocab"}))
    torch.testing.assert_close(nlp_lib.load(good).logits(["a great film"]), expected, rtol=0, atol=0)


def test_a_trusted_users_tokenizer_round_trips(tmp_path, monkeypatch):
    pkg = tmp_path / "pkgs" / "my_tok"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(USER_TOKENIZER)
    monkeypatch.syspath_prepend(str(pkg.parent))
    from my_tok import CharVocab

    model = SequenceClassifier(vocab_size=30, num_classes=2, cell=LSTMCell, embedding_size=4, hidden_size=3)
    b = nlp_lib.save(model, tmp_path / "chars", tokenizer=CharVocab(), labels=["n", "p"])
    assert (b / "chars.json").is_file()
    with pytest.raises(BundleError, match=r"my_tok.CharVocab.*trust=\['my_tok'\]"):
        nlp_lib.load(b)
    assert type(nlp_lib.load(b, trust=["my_tok"]).tokenizer) is CharVocab


USER_TOKENIZER = """
import json


class CharVocab:
    bundle_suffix = "chars.json"
    vocab_size = 30

    def save(self, path):
        open(path, "w").write(json.dumps({"chars": 30}))

    @classmethod
    def from_bundle(cls, directory, name):
        json.loads((directory / name).read_text())
        return cls()

    def encode(self, text):
        return [min(ord(c) - 96, 29) for c in text]
"""


@pytest.mark.parametrize("value", ["false", "no", 0, 1, None])
def test_trust_code_must_be_a_bool_not_a_truthy_string(good, value):
    with pytest.raises(BundleError, match="trust_code: must be True or False"):
        nlp_lib.load(good, trust_code=value)
    with pytest.raises(BundleError, match="trust: expected a list of dotted names"):
        nlp_lib.load(good, trust=3)


@pytest.mark.parametrize(
    "name, message",
    [
        ("nlp_lib.data.vocab._WordList", "a private name"),
        ("nlp_lib.data.vocab.Seq2SeqVocab", "the tokenizer is a Seq2SeqVocab; this model reads WordVocab or"),
    ],
)
def test_a_tokenizer_of_the_wrong_kind_for_the_model_is_refused_at_load(good, name, message):
    meta = json.loads((good / "meta.json").read_text())
    vocab = json.loads((good / "vocab.json").read_text())
    (good / "vocab.json").write_text(json.dumps({**vocab, "words": ["<pad>", "<unk>", "<s>", "</s>"]}))
    (good / "meta.json").write_text(json.dumps({**meta, "tokenizer": {"class": name, "file": "vocab.json"}}))
    with pytest.raises(BundleError, match=message):
        nlp_lib.load(good)


def test_a_seq2seq_target_vocabulary_must_match_its_embedding(tmp_path):
    from nlp_lib.data.vocab import Seq2SeqVocab
    from nlp_lib.models import Seq2Seq

    src, tgt = Seq2SeqVocab.build(["jump twice"]), Seq2SeqVocab.build(["JUMP JUMP WALK"])
    model = Seq2Seq(src_vocab_size=src.vocab_size, tgt_vocab_size=tgt.vocab_size, cell=LSTMCell, hidden_size=4)
    b = nlp_lib.save(model, tmp_path / "s2s", tokenizer={"source": src, "target": tgt})
    (b / "target.vocab.json").write_text(json.dumps({"lowercase": False, "words": list(Seq2SeqVocab.SPECIALS)}))
    with pytest.raises(BundleError, match="target tokenizer has 4 entries, but the model's embedding has 6 rows"):
        nlp_lib.load(b)


def test_random_bytes_as_a_checkpoint_are_a_checkpoint_error_whatever_they_are(tmp_path):
    # random bytes once made torch's weights-only unpickler raise IndexError (a traceback, not an error naming the file)
    import random

    from nlp_lib.errors import CheckpointError
    from nlp_lib.tasks.checkpoint_io import AtomicCheckpointIO

    rng = random.Random(0)
    path = tmp_path / "last.ckpt"
    for size in (1, 7, 64, 4096) * 50:
        path.write_bytes(bytes(rng.getrandbits(8) for _ in range(size)))
        with pytest.raises(CheckpointError, match=str(path)):
            AtomicCheckpointIO().load_checkpoint(path)
