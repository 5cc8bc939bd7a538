"""scripts/bench/peers.py without OpenNMT-py: its log parsing, its vocabulary filter, and our worker."""

import importlib.util
import subprocess
import sys

import pytest
from conftest import REPO, SHARED_DATA

PEERS = REPO / "scripts" / "bench" / "peers.py"


def _module():
    spec = importlib.util.spec_from_file_location("peers_bench", PEERS)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


LOG = """[2026-12-02 21:47:01,000 INFO] Start training loop
[2026-12-02 21:47:14,722 INFO] Step 50/  150; acc: 9.1; ppl: 3197.6; xent: 8.1; lr: 0.00100; sents:    1280; bsz:  806/ 838/64; 496/516 tok/s;     33 sec;
[2026-12-02 21:47:24,722 INFO] Step 100/  150; acc: 11.8; ppl: 681.9; xent: 6.5; lr: 0.00100; sents:    1280; bsz:  762/ 794/64; 1324/1000 tok/s;     44 sec;
[2026-12-02 21:47:44,722 INFO] Step 150/  150; acc: 14.1; ppl: 580.1; xent: 6.4; lr: 0.00100; sents:    1280; bsz:  848/ 858/64; 1163/2500 tok/s;     59 sec;
"""


def test_opennmt_reports_after_the_window_start_make_the_throughput():
    peers = _module()
    got = peers.parse_onmt_train(LOG, 50)  # windows 50->100 (10 s at 1000/s) and 100->150 (20 s at 2500/s)
    assert got["seconds"] == pytest.approx(30.0)
    assert got["tgt_tokens_per_s"] == pytest.approx((10 * 1000 + 20 * 2500) / 30)
    assert peers.parse_onmt_train(LOG, 100)["tgt_tokens_per_s"] == pytest.approx(2500)
    with pytest.raises(SystemExit, match="no OpenNMT-py report after step 150"):
        peers.parse_onmt_train(LOG, 150)


def test_vocabulary_lines_opennmt_cannot_read_are_dropped(tmp_path):
    vocab = tmp_path / "vocab.src"
    vocab.write_text("the\t10\na\u00a0b\t3\nno_count\nx\t2\textra\nok\t1\n", encoding="utf-8")
    assert _module().filter_vocab(vocab) == 3
    assert vocab.read_text(encoding="utf-8") == "the\t10\nok\t1\n"


@pytest.mark.integration
def test_our_worker_trains_saves_and_decodes_to_the_forced_length(tmp_path):
    data = SHARED_DATA / "multi30k" / "tok"
    if not data.is_dir():
        pytest.skip("the shared data folder is absent")
    base = [sys.executable, str(PEERS), "--threads", "2"]
    train = subprocess.run(
        [*base, "--worker", "train", "--data", str(data), "--steps", "6", "--window-start", "2", "--out", str(tmp_path / "b")],
        capture_output=True, text=True, timeout=600, cwd=REPO,
    )  # fmt: skip
    assert train.returncode == 0, train.stderr[-3000:]
    line = next(x for x in train.stdout.splitlines() if x.startswith("OURS_TRAIN"))
    fields = dict(kv.split("=") for kv in line.split()[1:])
    assert int(fields["tokens"]) > 0 and float(fields["seconds"]) > 0
    src = tmp_path / "src.en"
    src.write_text("a man is walking .\ntwo dogs play in the snow .\n", encoding="utf-8")
    for precision in ("full", "bfloat16"):
        beam = subprocess.run(
            [*base, "--worker", "beam", "--data", str(src), "--out", str(tmp_path / "b"), "--beam-length", "7",
             "--precision", precision],
            capture_output=True, text=True, timeout=600, cwd=REPO,
        )  # fmt: skip
        assert beam.returncode == 0, beam.stderr[-3000:]
        line = next(x for x in beam.stdout.splitlines() if x.startswith("OURS_BEAM"))
        assert line.split("lengths=")[1] == "7,7"
        assert float(dict(kv.split("=") for kv in line.split()[1:])["gemm_seconds"]) > 0
