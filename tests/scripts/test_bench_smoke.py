"""The benchmark scripts still run (tiny settings) and print their JSON: a library change must not
break them silently. Their figures are measured by running them as documented, not here."""

import json
import os
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


@pytest.mark.integration
def test_export_bench_runs():
    pytest.importorskip("onnxruntime", reason="the export extra is not installed")
    out = _bench("export.py", "--batch", "8", "--reps", "1")
    assert out["max_abs_diff"] <= 1e-4 and out["seq2seq_identical_outputs"]


@pytest.mark.integration
def test_data_bench_runs():
    if not (SHARED_DATA / "multi30k" / "raw").is_dir() or not (SHARED_DATA / "sst" / "trees").is_dir():
        pytest.skip("the shared data folder is absent")
    out = _bench("data.py", "--reps", "1", "--data", str(SHARED_DATA))
    assert out["cached_speedup"] > 1 and out["balanced_max_over_mean"] < 1.05


@pytest.mark.integration
def test_cells_bench_runs():
    out = _bench(
        "cells.py", "--batch", "4", "--seq-len", "5", "--hidden", "16", "--input-size", "8",
        "--steps", "1", "--warmup", "1", "--repeats", "2",
    )  # fmt: skip
    names = (
        "ratio_lstm_vs_nn_lstm",
        "ratio_layernorm_vs_nn_lstm",
        "ratio_lstm_vs_naive_loop",
        "ratio_fused_vs_nn_lstm",
    )
    assert all(out[k] > 0 for k in names) and out["cpu"]


@pytest.mark.integration
def test_tree_lstm_bench_runs():
    out = _bench(
        "tree_lstm.py", "--data", "synthetic", "--batch", "8", "--hidden", "16", "--input-size", "8",
        "--recursive-trees", "2", "--steps", "1", "--warmup", "1", "--repeats", "1",
    )  # fmt: skip
    assert out["ratio_vs_recursive"] > 0 and out["ratio_vs_lstm"] > 0 and 0 <= out["schedule_overhead_share"] < 1


@pytest.mark.integration
def test_seq2seq_bench_runs():
    out = _bench(
        "seq2seq.py", "--batch", "8", "--hidden", "16", "--embedding", "8", "--train-steps", "2", "--steps", "1",
        "--repeats", "1", "--beam", "2", "--beam-batch", "4", "--sentences", "8", "--max-length", "10",
    )  # fmt: skip
    assert out["identical_share"] == 1.0 and out["beam_batched_vs_single"] > 0


@pytest.mark.integration
def test_sampler_bench_runs():
    if not (SHARED_DATA / "sst" / "trees").is_dir():
        pytest.skip("the shared data folder is absent")
    path = SHARED_DATA / "sst" / "trees" / "dev.txt"
    out = _bench("sampler.py", "--sst-path", str(path), "--ranks", "2", "--epochs", "1")
    assert out["balanced_max_over_mean"] < out["distributed_max_over_mean"]


@pytest.mark.integration
def test_seq2seq_decoder_bench_runs():
    out = _bench("seq2seq_decoder.py", "--src-vocab", "50", "--tgt-vocab", "60", "--hidden", "8", "--repeats", "1")
    assert out["speedup"] > 0 and out["output_once_tgt_tokens_per_s"] > 0
    assert out["sliced_vs_output_once"] > 0 and out["sliced_loss_tgt_tokens_per_s"] > 0


@pytest.mark.integration
def test_gemm_bench_runs():
    out = _bench("gemm.py", "--rounds", "1", "--repeats", "1")
    assert out["default_backend"] in ("onednn", "torch") and len(out["shapes"]) == 6
    assert all(s["torch_gflops"] > 0 and s["onednn_gflops"] > 0 for s in out["shapes"])


@pytest.mark.integration
def test_seq2seq_curve_bench_runs():
    if not (SHARED_DATA / "multi30k" / "tok").is_dir():
        pytest.skip("the shared data folder is absent")
    out = _bench("seq2seq_curve.py", "--steps", "3", "--data", str(SHARED_DATA / "multi30k" / "tok"))
    assert out["steps"] == 3 and out["max_rel_diff"] < 1e-4


@pytest.mark.integration
def test_data_scale_bench_runs(tmp_path):
    out = _bench("data_scale.py", "--pairs", "300", "--trees", "120", "--work", str(tmp_path))
    assert [r["kind"] for r in out["rows"]] == ["pairs", "trees"]
    for row in out["rows"]:
        assert row["prepare"]["seconds"] > 0 and row["cached"]["seconds"] > 0
        assert row["train"]["peak_pss_gb"] > 0.1 and row["loader_vs_train"] > 0


@pytest.mark.integration
def test_tree_depth_bench_runs_and_height_batches_run_fewer_levels():
    out = _bench("tree_depth.py", "--trees", "600", "--epoch-trees", "256", "--batches", "1", "--repeats", "1")
    plans = out["plans"]
    assert plans["height"]["level_steps"] < plans["random"]["level_steps"]
    assert {p["batches"] for p in plans.values()} and all(r["trees_per_s"] > 0 for r in out["by_height"])


@pytest.mark.integration
def test_listops_testsets_writes_deep_long_expressions(tmp_path):
    from nlp_lib.data.listops import to_plain
    from nlp_lib.data.listops_files import read_listops

    res = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "listops_testsets.py"), "--out", str(tmp_path), "--size", "4",
         "--min-nesting", "5", "--min-length", "120"],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    data = read_listops(tmp_path / "test.tsv")
    assert len(data) == summary["examples"] == 4 and summary["nesting"][0] >= 5 and summary["tokens"][0] >= 120
    assert all(
        len(to_plain(e)) >= 120
        for e in (line.split("\t")[1] for line in (tmp_path / "test.tsv").read_text().splitlines())
    )


@pytest.mark.integration
def test_beam_precision_bench_runs(tmp_path):
    import torch

    import nlp_lib
    from nlp_lib.data.vocab import Seq2SeqVocab
    from nlp_lib.models import Seq2Seq

    torch.manual_seed(0)
    src_lines = ["a man walks", "two dogs play in the snow", "a girl reads"] * 3
    ref_lines = ["ein mann geht", "zwei hunde spielen im schnee", "ein mädchen liest"] * 3
    src, tgt = Seq2SeqVocab.build(src_lines), Seq2SeqVocab.build(ref_lines)
    model = Seq2Seq(src_vocab_size=src.vocab_size, tgt_vocab_size=tgt.vocab_size, embedding_size=8, hidden_size=8)
    bundle = nlp_lib.save(model.eval(), tmp_path / "b", tokenizer={"source": src, "target": tgt})
    (tmp_path / "src.txt").write_text("\n".join(src_lines) + "\n", encoding="utf-8")
    (tmp_path / "ref.txt").write_text("\n".join(ref_lines) + "\n", encoding="utf-8")
    out = _bench(
        "beam_precision.py", "--bundle", str(bundle), "--src", str(tmp_path / "src.txt"),
        "--ref", str(tmp_path / "ref.txt"), "--rounds", "1", "--batch", "4", "--max-length", "6",
    )  # fmt: skip
    assert out["sentences"] == 9 and out["full_sents_per_s"] > 0 and out["bf16_sents_per_s"] > 0
    assert 0 <= out["identical_outputs"] <= 1 and out["bleu_full"] >= 0 and isinstance(out["cpu_bf16"], bool)


@pytest.mark.integration
def test_data_scale_worker_refuses_to_measure_another_checkout_than_named(tmp_path):
    # the baseline comparison once ran this checkout's code for the older revision (its script put
    # this repository first on sys.path): the worker now checks where nlp_lib and its configs come from
    env = {**os.environ, "NLP_LIB_BENCH_TREE": str(tmp_path), "PYTHONPATH": str(tmp_path)}
    res = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench" / "data_scale.py"), "--worker", "prepare", "--kind", "pairs",
         "--data", str(tmp_path), "--cache", str(tmp_path / "c"), "--run-dir", str(tmp_path / "r"), "--old"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert res.returncode != 0 and f"measuring {tmp_path.resolve()}" in res.stderr, res.stderr[-2000:]
