"""Beam search of a trained seq2seq bundle with the output layer's product in full precision vs bfloat16.

Decodes the same sources (``--src``, one a line, plain or ``.gz``) through the bundle's predictor
(``nlp_lib.load(bundle).translate``: tokenisation, batched beam search, detokenisation) with
``output_precision="full"`` (the exact search) and ``"bfloat16"``, alternating, ``--rounds`` times,
and prints sentences/s of each (median over rounds), the speedup, sacrebleu BLEU and chrF of each
against ``--ref`` (the task's own scoring: ``score_outputs``), and the share of outputs that are
identical. ``cpu_bf16`` says whether the CPU has AVX512-BF16 or AMX: without them the bfloat16
product is slower, and the script says so rather than hiding it.

    .venv/bin/python scripts/bench/beam_precision.py --bundle runs/multi30k_seq2seq/<run>/bundle \\
        --src ../shared/data/multi30k/raw/test_2016_flickr.en.gz \\
        --ref ../shared/data/multi30k/raw/test_2016_flickr.de.gz --json

Never run it beside another job: the timings need the cores to themselves.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import cpu_name, print_json, print_table  # noqa: E402

PRECISIONS = ("full", "bfloat16")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path, required=True, help="a seq2seq bundle (<run dir>/bundle)")
    ap.add_argument("--src", type=Path, required=True, help="source sentences, one a line (.gz too)")
    ap.add_argument("--ref", type=Path, required=True, help="reference translations, line-aligned with --src")
    ap.add_argument("--sentences", type=int, default=None, help="decode only the first N (default: all)")
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--max-length", type=int, default=80)
    ap.add_argument("--length-penalty", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    import torch

    import nlp_lib
    from nlp_lib.data.parallel import read_parallel
    from nlp_lib.models.decoding import bf16_is_native
    from nlp_lib.tasks.seq2seq import score_outputs

    torch.set_num_threads(a.threads)
    pairs = read_parallel(a.src, a.ref)  # line-aligned, plain or gzip; errors name file and line
    src, refs = [x for x, _ in pairs], [y for _, y in pairs]
    if a.sentences:
        src, refs = src[: a.sentences], refs[: a.sentences]
    predictor = nlp_lib.load(a.bundle)
    kw = dict(beam_size=a.beam, max_length=a.max_length, length_penalty=a.length_penalty)
    predictor.translate(src[: a.batch], a.batch, **kw)  # warm-up: first-call allocations, thread pools
    seconds: dict[str, list[float]] = {p: [] for p in PRECISIONS}
    outputs: dict[str, list[str]] = {}
    for r in range(a.rounds):
        for p in PRECISIONS if r % 2 == 0 else PRECISIONS[::-1]:  # alternate which goes first
            t0 = time.perf_counter()
            out = predictor.translate(src, a.batch, output_precision=p, **kw)
            seconds[p].append(time.perf_counter() - t0)
            hyps = [o[0]["output"] for o in out]
            if outputs.setdefault(p, hyps) != hyps:
                raise SystemExit(f"output_precision={p}: round {r + 1} decoded other outputs than round 1")
    rate = {p: len(src) / statistics.median(seconds[p]) for p in PRECISIONS}
    scores = {p: score_outputs(outputs[p], refs) for p in PRECISIONS}
    same = sum(x == y for x, y in zip(outputs["full"], outputs["bfloat16"], strict=True)) / len(src)
    result = {
        "benchmark": "beam_precision",
        "cpu": cpu_name(),
        "cpu_bf16": bf16_is_native(torch.device("cpu")),
        "threads": a.threads,
        "bundle": str(a.bundle),
        "sentences": len(src),
        "beam": a.beam,
        "batch": a.batch,
        "rounds": a.rounds,
        "full_sents_per_s": round(rate["full"], 2),
        "bf16_sents_per_s": round(rate["bfloat16"], 2),
        "speedup_bf16": round(rate["bfloat16"] / rate["full"], 3),
        "speedup_per_round": [round(f / b, 3) for f, b in zip(seconds["full"], seconds["bfloat16"], strict=True)],
        "bleu_full": round(scores["full"]["bleu"], 2),
        "bleu_bf16": round(scores["bfloat16"]["bleu"], 2),
        "chrf_full": round(scores["full"]["chrf"], 2),
        "chrf_bf16": round(scores["bfloat16"]["chrf"], 2),
        "identical_outputs": round(same, 4),
    }
    print_table(
        ["output_precision", "sentences/s", "BLEU", "chrF"],
        [[p, rate[p], round(scores[p]["bleu"], 2), round(scores[p]["chrf"], 2)] for p in PRECISIONS],
    )
    print(
        f"bfloat16 speedup {result['speedup_bf16']:.2f}x, identical outputs {same:.1%}, CPU bf16: {result['cpu_bf16']}"
    )
    if a.json:
        print_json(result)


if __name__ == "__main__":
    main()
