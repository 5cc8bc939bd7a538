"""nlp_lib vs OpenNMT-py 3.5.1, side by side: seq2seq training tokens/s and beam-5 decoding sentences/s.

The same data, model and machine (issue 18's configuration): Multi30K en->de from the lower-cased
tokenised files (``--data``, default ``../shared/data/multi30k/tok``), full word vocabularies, a
bidirectional LSTM encoder (2 x 128), an LSTM decoder of 256, embeddings 256, general attention,
input feeding, dropout 0.3, label smoothing 0.1, batches of 64 sentences, Adam at 1e-3.

* **Training**: each system trains ``--steps`` steps from scratch, ``--rounds`` times, alternating
  (OpenNMT-py, nlp_lib, OpenNMT-py, ...). Throughput is target tokens (the end token counted, the
  start token not, as OpenNMT-py counts them) per second over steps ``--window-start``..``--steps``:
  for OpenNMT-py from its own reports (every 50 steps) and the log's timestamps; for nlp_lib from the
  Lightning loop the ``nlp-lib train`` task runs (``Seq2SeqTask``: ``token_loss``, the recipe's fused
  Adam, per-batch random streams, the default callbacks' ``cpu_heap``), timed by a callback. The
  ratio is the median over rounds of each round's ratio.
* **Beam search**: each trained model translates the first ``--sentences`` test_2016_flickr sources,
  beam 5, batches of 64, every output forced to ``--beam-length`` tokens (``-min_length`` =
  ``-max_length`` and ``-max_length_ratio 0`` for ``onmt_translate``, ``min_length`` = ``max_length`` for ``beam_search``), so
  both do the same number of steps on the same shapes; sentences/s from ``onmt_translate
  -report_time`` (translation only) and our decoding loop (tokenisation included), alternating,
  ``--rounds`` times. The script checks that the output lengths are identical, and times the
  output layer's product alone for as many beam steps (``output_gemm_only_sents_per_s``): the
  floor under any exact beam-5 decoder of this model on the machine. Our model also decodes with
  ``output_precision="bfloat16"`` (the output layer's product in bfloat16: an approximation, faster
  on CPUs with AVX512-BF16 or AMX, ``cpu_bf16``): ``ratio_beam_bf16_vs_opennmt``, against the same
  OpenNMT-py float32 run; ``scripts/bench/beam_precision.py`` measures what it costs in BLEU.

OpenNMT-py is installed into its own virtual environment (``--venv``, default
``.bench/opennmt-py-3.5.1``) when missing, as the issue prescribes; it needs the PyPI registry once.
``--json`` prints one JSON object on the last line. Runs ~20 minutes on 2 CPU cores with the
defaults; never run it beside another job.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import cpu_name, print_json, print_table  # noqa: E402

ONMT_VERSION = "3.5.1"
TRAIN_FILES = ("train.lc.norm.tok", "val.lc.norm.tok", "test_2016_flickr.lc.norm.tok")
REPORT_EVERY = 50
_STEP = re.compile(
    r"^\[(?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO\] Step (?P<step>\d+)/\s*\d+;.*?"
    r"(?P<src>\d+)/\s*(?P<tgt>\d+) tok/s;"
)
_TOTAL_TIME = re.compile(r"Total translation time \(s\): (?P<s>[0-9.]+)")


# ----------------------------------------------------------------------------- OpenNMT-py side


def ensure_opennmt(venv: Path) -> Path:
    """The ``bin`` folder of a virtual environment with OpenNMT-py 3.5.1, created if missing."""
    bin_dir = venv / "bin"
    if (bin_dir / "onmt_train").exists():
        return bin_dir
    print(f"installing OpenNMT-py {ONMT_VERSION} into {venv} ...", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(bin_dir / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "torch==2.13.0", "configargparse", "pyyaml", "sacrebleu", "six", "tensorboard"], check=True)
    subprocess.run([*pip, "--no-deps", f"opennmt-py=={ONMT_VERSION}"], check=True)
    extras = ["pyonmttok>=1.37,<2", "spacy", "rapidfuzz", "pyahocorasick", "fasttext-wheel", "ctranslate2>=4,<5"]
    subprocess.run([*pip, *extras, "flask", "waitress"], check=True)
    return bin_dir


def filter_vocab(path: Path) -> int:
    """Keep the lines OpenNMT-py can read back (exactly two fields, ``word<TAB>count``); the number dropped."""
    lines = path.read_text(encoding="utf-8").split("\n")
    keep = [x for x in lines if len(x.split("\t")) == 2 and len(x.split()) == 2]
    path.write_text("\n".join(keep) + "\n", encoding="utf-8")
    return len([x for x in lines if x]) - len(keep)


def _yaml_path(p: Path) -> str:
    return '"' + str(p).replace("\\", "\\\\").replace('"', '\\"') + '"'


def onmt_config(work: Path, data: Path, steps: int, seed: int) -> Path:
    """The training config: issue 18's model, OpenNMT-py's defaults for everything else."""
    cfg = work / f"onmt_train_{steps}.yaml"
    cfg.write_text(
        f"""src_vocab: {_yaml_path(work / "vocab.src")}
tgt_vocab: {_yaml_path(work / "vocab.tgt")}
src_vocab_size: 1000000
tgt_vocab_size: 1000000
src_words_min_frequency: 0
tgt_words_min_frequency: 0
data:
  corpus_1:
    path_src: {_yaml_path(data / "train.lc.norm.tok.en")}
    path_tgt: {_yaml_path(data / "train.lc.norm.tok.de")}
save_model: {_yaml_path(work / "onmt_model")}
save_checkpoint_steps: 1000000
encoder_type: brnn
decoder_type: rnn
rnn_type: LSTM
enc_layers: 1
dec_layers: 1
hidden_size: 256
word_vec_size: 256
global_attention: general
input_feed: 1
dropout: [0.3]
label_smoothing: 0.1
batch_type: sents
batch_size: 64
optim: adam
learning_rate: 0.001
train_steps: {steps}
report_every: {REPORT_EVERY}
seed: {seed}
world_size: 1
num_workers: 0
""",
        encoding="utf-8",
    )
    return cfg


def onmt_vocab(bin_dir: Path, work: Path, data: Path) -> dict[str, int]:
    cfg = work / "onmt_vocab.yaml"
    cfg.write_text(
        f"""save_data: {_yaml_path(work / "onmt_data")}
src_vocab: {_yaml_path(work / "vocab.src")}
tgt_vocab: {_yaml_path(work / "vocab.tgt")}
overwrite: true
n_sample: -1
data:
  corpus_1:
    path_src: {_yaml_path(data / "train.lc.norm.tok.en")}
    path_tgt: {_yaml_path(data / "train.lc.norm.tok.de")}
""",
        encoding="utf-8",
    )
    _run([str(bin_dir / "onmt_build_vocab"), "-config", str(cfg)], work / "onmt_vocab.log")
    return {side: filter_vocab(work / f"vocab.{side}") for side in ("src", "tgt")}


def _env(threads: int) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    env["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"  # OpenNMT-py 3.5.1 checkpoints are pickles
    env["PYTHONWARNINGS"] = "ignore"
    return env


def _run(cmd: list[str], log: Path, threads: int = 2) -> str:
    with open(log, "w", encoding="utf-8") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=_env(threads), check=False)
    text = log.read_text(encoding="utf-8", errors="replace")
    if proc.returncode:
        raise SystemExit(f"{cmd[0]} failed (exit {proc.returncode}); its log: {log}\n{text[-3000:]}")
    return text


def parse_onmt_train(log: str, window_start: int) -> dict[str, float]:
    """Target tokens/s over the reports after step ``window_start`` (tokens = tok/s x the report's interval)."""
    reports = []
    for line in log.splitlines():
        m = _STEP.match(line.strip())
        if m:
            when = datetime.strptime(m["time"], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            reports.append((int(m["step"]), when, float(m["tgt"])))
    window = [(b[1] - a[1], b[2]) for a, b in zip(reports, reports[1:], strict=False) if a[0] >= window_start]
    if not window:
        raise SystemExit(f"no OpenNMT-py report after step {window_start} in its log")
    seconds = sum(dt for dt, _ in window)
    return {"tgt_tokens_per_s": sum(dt * rate for dt, rate in window) / seconds, "seconds": seconds}


# ----------------------------------------------------------------------------- nlp_lib side (a worker process)


def ours_datamodule(data: Path, token_budget: int | None):
    from nlp_lib.data.builders import parallel_data

    train, val, test = TRAIN_FILES
    return parallel_data(
        path=str(data), source="en", target="de", train=train, val=val, test=test,
        tokenizer="word", batch_size=64, token_budget=token_budget, cache=False, seed=0,
    )  # fmt: skip


def ours_train(data: Path, steps: int, window_start: int, seed: int, out: Path, token_budget: int | None) -> None:
    """Train through Seq2SeqTask in a Lightning loop; print the window's tokens/s; save a bundle in ``out``."""
    import functools

    import pytorch_lightning as pl
    import torch

    import nlp_lib
    from nlp_lib.cells import LSTMCell
    from nlp_lib.models import Seq2Seq
    from nlp_lib.tasks.cpu_heap import RetainHeap
    from nlp_lib.tasks.seq2seq import Seq2SeqTask

    pl.seed_everything(seed, verbose=False)
    dm = ours_datamodule(data, token_budget)
    dm.prepare_data()
    dm.setup("fit")
    model = Seq2Seq(
        **dm.model_sizes(), cell=LSTMCell, embedding_size=256, hidden_size=256, bidirectional=True,
        attention="general", input_feeding=True, dropout=0.3,
    )  # fmt: skip
    task = Seq2SeqTask(
        model=model, optimizer=functools.partial(torch.optim.Adam, lr=1e-3, fused=True), label_smoothing=0.1
    )

    class Window(pl.Callback):
        start = end = 0.0
        tokens = 0

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
            step = trainer.global_step
            if step == window_start:
                self.start = time.perf_counter()
            elif step > window_start:
                self.tokens += batch.num_target_tokens
                self.end = time.perf_counter()

    window = Window()
    trainer = pl.Trainer(
        max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0, callbacks=[window, RetainHeap()],
        accelerator="cpu", devices=1,
    )  # fmt: skip
    trainer.fit(task, datamodule=dm)
    print(f"OURS_TRAIN tokens={window.tokens} seconds={window.end - window.start:.6f}", flush=True)
    nlp_lib.save(model.eval(), out, tokenizer=dm.tokenizers)


def ours_beam(bundle: Path, sources: Path, length: int, batch: int, precision: str) -> None:
    """Beam-5 decode ``sources`` with the saved model, every output ``length`` tokens, the output layer's
    product in ``precision`` (``full`` or ``bfloat16``); print time and lengths."""
    import torch

    import nlp_lib
    from nlp_lib.models.decoding import beam_search
    from nlp_lib.structure.seq2seq import Seq2SeqBatch

    p = nlp_lib.load(bundle)
    model, tok = p.model.eval(), p.tokenizer["source"]
    lines = sources.read_text(encoding="utf-8").splitlines()
    start = time.perf_counter()
    lengths = []
    with torch.inference_mode():
        for i in range(0, len(lines), batch):
            chunk = lines[i : i + batch]
            b = Seq2SeqBatch.from_ids([tok.encode(x) for x in chunk], [[] for _ in chunk], chunk)
            hyps = beam_search(
                model, b.src, b.src_lengths, beam_size=5, max_length=length, min_length=length,
                output_precision=precision,
            )  # fmt: skip
            lengths += [len(h[0].tokens) for h in hyps]
    seconds = time.perf_counter() - start
    # The floor under any exact beam-5 decoder on this machine: the output layer's product alone,
    # [5 x batch, H] x [H, V], once per step, as many steps as the decoding above ran.
    from nlp_lib.cells.gemm import linear

    weight, bias = model.output_layer()
    hidden = torch.randn(5 * batch, weight.shape[1])
    with torch.inference_mode():
        linear(hidden, weight, bias)  # the library's product (oneDNN where it is the faster: nlp_lib.cells.gemm)
        gemm_start = time.perf_counter()
        for _ in range(-(-len(lines) // batch) * length):
            linear(hidden, weight, bias)
        gemm = time.perf_counter() - gemm_start
    print(f"OURS_BEAM seconds={seconds:.6f} gemm_seconds={gemm:.6f} lengths={','.join(map(str, lengths))}", flush=True)


def _parse_kv(text: str, tag: str) -> dict[str, str]:
    for line in text.splitlines():
        if line.startswith(tag):
            return dict(kv.split("=", 1) for kv in line.split()[1:])
    raise SystemExit(f"the nlp_lib worker printed no {tag} line:\n{text[-3000:]}")


# ----------------------------------------------------------------------------- the comparison


def main() -> None:
    from nlp_lib.cells.gemm import cpu_backend

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "multi30k" / "tok")
    ap.add_argument("--venv", type=Path, default=REPO / ".bench" / f"opennmt-py-{ONMT_VERSION}")
    ap.add_argument("--work", type=Path, default=None, help="folder for configs, logs and models (default: a temp dir)")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--window-start", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sentences", type=int, default=512, help="test sources decoded per round")
    ap.add_argument("--beam-length", type=int, default=20, help="every output's length in the beam comparison")
    ap.add_argument("--token-budget", type=int, default=None, help="nlp_lib batches by a token budget instead")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--precision", choices=["full", "bfloat16"], default="full", help=argparse.SUPPRESS)
    ap.add_argument("--worker", choices=["train", "beam"], help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        import torch

        torch.set_num_threads(a.threads)
        if a.worker == "train":
            ours_train(a.data, a.steps, a.window_start, a.seed, a.out, a.token_budget)
        else:
            ours_beam(a.out, a.data, a.beam_length, 64, a.precision)
        return
    if a.steps - a.window_start < REPORT_EVERY or a.window_start % REPORT_EVERY:
        ap.error(f"--window-start must be a multiple of {REPORT_EVERY} at least {REPORT_EVERY} steps before --steps")
    for name in TRAIN_FILES:
        for lang in ("en", "de"):
            if not (a.data / f"{name}.{lang}").is_file():
                ap.error(f"--data: {a.data / f'{name}.{lang}'} is missing")
    bin_dir = ensure_opennmt(a.venv)
    work = a.work or Path(tempfile.mkdtemp(prefix="nlp_lib_peers_"))
    work.mkdir(parents=True, exist_ok=True)
    dropped = onmt_vocab(bin_dir, work, a.data)
    sources = work / "test_sources.en"
    test_lines = (a.data / "test_2016_flickr.lc.norm.tok.en").read_text(encoding="utf-8").splitlines()
    sources.write_text("\n".join(test_lines[: a.sentences]) + "\n", encoding="utf-8")
    me = [sys.executable, str(Path(__file__).resolve()), "--threads", str(a.threads), "--seed", str(a.seed)]

    train_rows, beam_rows, gemm_rows, bf16_rows = [], [], [], []
    for r in range(a.rounds):
        log = _run(
            [str(bin_dir / "onmt_train"), "-config", str(onmt_config(work, a.data, a.steps, a.seed))],
            work / f"onmt_train_{r}.log",
            a.threads,
        )
        onmt = parse_onmt_train(log, a.window_start)
        cmd = [*me, "--worker", "train", "--data", str(a.data), "--steps", str(a.steps)]
        cmd += ["--window-start", str(a.window_start), "--out", str(work / "ours_bundle")]
        if a.token_budget:
            cmd += ["--token-budget", str(a.token_budget)]
        ours = _parse_kv(_run(cmd, work / f"ours_train_{r}.log", a.threads), "OURS_TRAIN")
        ours_rate = int(ours["tokens"]) / float(ours["seconds"])
        train_rows.append((ours_rate, onmt["tgt_tokens_per_s"]))
        print(f"round {r + 1}: train tgt tokens/s: nlp_lib {ours_rate:,.0f}, OpenNMT-py {onmt['tgt_tokens_per_s']:,.0f}",
              file=sys.stderr, flush=True)  # fmt: skip

        model = work / f"onmt_model_step_{a.steps}.pt"
        hyp = work / f"onmt_hyp_{r}.txt"
        translate = [str(bin_dir / "onmt_translate"), "-model", str(model), "-src", str(sources), "-output", str(hyp)]
        translate += ["-beam_size", "5", "-batch_size", "64", "-batch_type", "sents", "-report_time"]
        translate += ["-min_length", str(a.beam_length), "-max_length", str(a.beam_length)]
        translate += ["-max_length_ratio", "0"]  # else a batch stops at 1.5 x its longest source + 5
        m = _TOTAL_TIME.search(_run(translate, work / f"onmt_translate_{r}.log", a.threads))
        if not m:
            raise SystemExit(f"onmt_translate printed no total time; see {work / f'onmt_translate_{r}.log'}")
        onmt_lengths = [len(x.split()) for x in hyp.read_text(encoding="utf-8").splitlines()]
        onmt_rate = len(onmt_lengths) / float(m["s"])
        for precision in ("full", "bfloat16"):
            cmd = [*me, "--worker", "beam", "--data", str(sources), "--out", str(work / "ours_bundle")]
            cmd += ["--beam-length", str(a.beam_length), "--precision", precision]
            beam = _parse_kv(_run(cmd, work / f"ours_beam_{precision}_{r}.log", a.threads), "OURS_BEAM")
            our_lengths = [int(x) for x in beam["lengths"].split(",")]
            n = len(our_lengths)
            row = (n / float(beam["seconds"]), onmt_rate, our_lengths == onmt_lengths)
            if precision == "full":
                beam_rows.append(row)
                gemm_rows.append(n / float(beam["gemm_seconds"]))
            else:
                bf16_rows.append(row)
        print(f"round {r + 1}: beam-5 sentences/s: nlp_lib {beam_rows[-1][0]:,.1f} (bfloat16 output layer "
              f"{bf16_rows[-1][0]:,.1f}), OpenNMT-py {onmt_rate:,.1f}", file=sys.stderr, flush=True)  # fmt: skip

    import torch

    from nlp_lib.models.decoding import bf16_is_native

    med = statistics.median
    result = {
        "benchmark": "peers_opennmt",
        "cpu": cpu_name(),
        "threads": a.threads,
        "opennmt_py": ONMT_VERSION,
        "steps": a.steps,
        "window": [a.window_start, a.steps],
        "rounds": a.rounds,
        "ours_batching": f"token_budget={a.token_budget}" if a.token_budget else "64 sentences",
        "ours_cpu_matmul": cpu_backend(),  # nlp_lib.cells.gemm: onednn or torch (NLP_LIB_CPU_MATMUL)
        "ours_tgt_tokens_per_s": round(med(x for x, _ in train_rows), 1),
        "opennmt_tgt_tokens_per_s": round(med(y for _, y in train_rows), 1),
        "ratio_train_vs_opennmt": round(med(x / y for x, y in train_rows), 3),
        "ratio_train_per_round": [round(x / y, 3) for x, y in train_rows],
        "beam_sentences": a.sentences,
        "beam_output_length": a.beam_length,
        "ours_beam_sents_per_s": round(med(x for x, _, _ in beam_rows), 2),
        "opennmt_beam_sents_per_s": round(med(y for _, y, _ in beam_rows), 2),
        "ratio_beam_vs_opennmt": round(med(x / y for x, y, _ in beam_rows), 3),
        "ratio_beam_per_round": [round(x / y, 3) for x, y, _ in beam_rows],
        "identical_output_lengths": all(same for _, _, same in beam_rows + bf16_rows),
        "cpu_bf16": bf16_is_native(torch.device("cpu")),
        "ours_beam_bf16_sents_per_s": round(med(x for x, _, _ in bf16_rows), 2),
        "ratio_beam_bf16_vs_opennmt": round(med(x / y for x, y, _ in bf16_rows), 3),
        "ratio_beam_bf16_per_round": [round(x / y, 3) for x, y, _ in bf16_rows],
        "output_gemm_only_sents_per_s": round(med(gemm_rows), 2),
        "ratio_output_gemm_only_vs_opennmt": round(
            med(g / y for g, (_, y, _) in zip(gemm_rows, beam_rows, strict=True)), 3
        ),
        "vocab_lines_dropped": dropped,
        "work": str(work),
    }
    print_table(
        ["", "nlp_lib", "OpenNMT-py", "ratio"],
        [
            ["train tgt tokens/s", result["ours_tgt_tokens_per_s"], result["opennmt_tgt_tokens_per_s"],
             f"{result['ratio_train_vs_opennmt']:.2f}x"],
            ["beam-5 sentences/s", result["ours_beam_sents_per_s"], result["opennmt_beam_sents_per_s"],
             f"{result['ratio_beam_vs_opennmt']:.2f}x"],
            ["beam-5, bfloat16 output layer", result["ours_beam_bf16_sents_per_s"], result["opennmt_beam_sents_per_s"],
             f"{result['ratio_beam_bf16_vs_opennmt']:.2f}x"],
        ],
    )  # fmt: skip
    if a.json:
        print_json(result)


if __name__ == "__main__":
    main()
