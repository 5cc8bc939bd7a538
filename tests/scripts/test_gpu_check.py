"""scripts/gpu_check's plumbing on the CPU (tiny sizes): every step runs or says why not, and the
JSON summary holds the versions, each step's rc, seconds and parsed output, and the bars."""

import json
import subprocess
import sys

import pytest
from conftest import REPO


@pytest.mark.integration
def test_gpu_check_on_the_cpu_writes_its_summary(tmp_path):
    res = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gpu_check"), "--device", "cpu", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    summary = json.loads((tmp_path / "gpu_check.json").read_text())
    v = summary["versions"]
    assert v["torch"] and v["python"] and v["pytorch_lightning"] and "cuda" in v and "cudnn" in v and "gpu" in v
    steps = {s["name"]: s for s in summary["steps"]}
    curve = [f"tree_lstm_b{b}" for b in (256, 512, 1024, 2048, 4096)]
    assert list(steps) == ["gpu_tests", "sync_and_compile_tests", *curve, "cells", "seq2seq", "ddp"]
    for name in ["gpu_tests", "sync_and_compile_tests", *curve, "cells", "seq2seq"]:
        assert steps[name]["status"] == "ok" and steps[name]["rc"] == 0 and steps[name]["seconds"] > 0, name
    assert steps["gpu_tests"]["tests"]["tests"] > 0  # collected (skipped without CUDA)
    assert steps["sync_and_compile_tests"]["tests"]["failures"] == 0
    assert all(steps[n]["json"]["trees_per_s"] > 0 and steps[n]["json"]["hidden"] == 16 for n in curve)
    assert steps["cells"]["json"]["nn_lstm_tokens_per_s"] > 0 and steps["seq2seq"]["json"]["beam_sents_per_s"] > 0
    assert steps["ddp"]["status"] == "skipped" and "GPUs" in steps["ddp"]["reason"]
    assert summary["failed"] == [] and summary["total_s"] < summary["deadline_s"]
    assert {b["figure"] for b in summary["bars"]} >= {
        "tree_lstm trees/s, batch 4096",
        "tree_lstm recompiles after warm-up",
    }


@pytest.mark.integration
def test_a_failed_step_is_recorded_and_the_script_goes_on(tmp_path, monkeypatch):
    import importlib.machinery
    import importlib.util

    loader = importlib.machinery.SourceFileLoader("gpu_check", str(REPO / "scripts" / "gpu_check"))
    spec = importlib.util.spec_from_loader("gpu_check", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    steps = [
        {"name": "bad", "cmd": [sys.executable, "-c", "import sys; print('{\"x\": 1}'); sys.exit(3)"], "timeout": 30},
        {"name": "slow", "cmd": [sys.executable, "-c", "import time; time.sleep(30)"], "timeout": 11},
        {"name": "good", "cmd": [sys.executable, "-c", "print('{\"y\": 2}')"], "timeout": 30},
    ]
    monkeypatch.setattr(mod, "plan", lambda device, out: steps)
    monkeypatch.setattr(sys, "argv", ["gpu_check", "--device", "cpu", "--out", str(tmp_path)])
    assert mod.main() == 1
    summary = json.loads((tmp_path / "gpu_check.json").read_text())
    got = {s["name"]: s for s in summary["steps"]}
    assert got["bad"]["rc"] == 3 and got["bad"]["json"] == {"x": 1} and got["bad"]["status"] == "failed"
    assert got["slow"]["rc"] == 124 and "timed out" in got["slow"]["output_tail"]
    assert got["good"]["status"] == "ok" and got["good"]["json"] == {"y": 2}
    assert summary["failed"] == ["bad", "slow"]
