"""The benchmark scripts still run (tiny settings) and print their JSON: a library change must not
break them silently. Their figures are measured by running them as documented, not here."""

import json
import subprocess
import sys

import pytest
from conftest import REPO, SHARED_DATA


def _bench(script, *args, timeout=300):
    res = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench" / script), "--json", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_export_bench_runs():
    pytest.importorskip("onnxruntime", reason="the export extra is not installed")
    out = _bench("export.py", "--batch", "8", "--reps", "1")
    assert out["max_abs_diff"] <= 1e-4 and out["seq2seq_identical_outputs"]


def test_data_bench_runs():
    if not (SHARED_DATA / "multi30k" / "raw").is_dir() or not (SHARED_DATA / "sst" / "trees").is_dir():
        pytest.skip("the shared data folder is absent")
    out = _bench("data.py", "--reps", "1", "--data", str(SHARED_DATA))
    assert out["cached_speedup"] > 1 and out["balanced_max_over_mean"] < 1.05
