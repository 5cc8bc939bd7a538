"""scripts/runs_summary.py: mean and standard deviation of finished runs' metrics (seeds of a sweep)."""

import json
import sys

import pytest
from conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
import runs_summary  # noqa: E402


def _run(folder, val=None, test=None, finished=True):
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text("recipe: x\n")
    if finished:
        (folder / "metrics.json").write_text(json.dumps({"val": val or {}, "test": test or {}, "epochs": 3}))


def test_a_sweep_folder_gives_mean_and_sample_std_per_metric(tmp_path, capsys):
    sweep = tmp_path / "multirun"
    for i, acc in enumerate([0.4, 0.5, 0.6]):
        _run(sweep / str(i), val={"accuracy": acc, "loss": 1.0, "flag": True})
    _run(sweep / "3", finished=False)  # still going: named and left out
    _run(sweep / "0" / "bundle", finished=False)  # a run's bundle has a config.yaml too: not a run
    runs_summary.main([str(sweep), "--json"])
    out, err = capsys.readouterr()
    summary = json.loads(out)
    acc = summary["metrics"]["val"]["accuracy"]
    assert acc["runs"] == 3 and acc["mean"] == pytest.approx(0.5) and acc["std"] == pytest.approx(0.1)
    assert (acc["min"], acc["max"]) == (0.4, 0.6) and "flag" not in summary["metrics"]["val"]
    assert "3: no metrics.json" in err and "bundle" not in err


def test_metrics_some_runs_lack_are_left_out_and_bad_input_is_named(tmp_path):
    _run(tmp_path / "a", val={"accuracy": 0.5, "bleu": 30.0})
    _run(tmp_path / "b", val={"accuracy": 0.7})
    summary = runs_summary.summarise(runs_summary.find_runs([tmp_path])[0])
    assert set(summary["val"]) == {"accuracy"}
    (tmp_path / "b" / "metrics.json").write_text("{not json")
    with pytest.raises(SystemExit, match="metrics.json: unreadable"):
        runs_summary.summarise(runs_summary.find_runs([tmp_path])[0])
    with pytest.raises(SystemExit, match="no finished run"):
        runs_summary.main([str(tmp_path / "a" / "nothing_here")]) if False else runs_summary.main(
            [str(_empty(tmp_path))]
        )


def _empty(tmp_path):
    (tmp_path / "empty").mkdir()
    return tmp_path / "empty"
