"""Data at scale: preparation time, cached load, memory of a training process tree, loader speed.

Generates synthetic corpora into ``--work`` (never into the repository): sentence pairs with
Multi30K-like lengths (source ~13, target ~12 tokens, Zipf-distributed words over 60,000 types per
side) and SST-like binary trees (~19 leaves, a label 0-4 on every node), then, per size and each in
a fresh process started through the recipes' own config (``nlp_lib.cli.compose``, the DataModule
``hydra.utils.instantiate(cfg.data)`` builds):

* ``prepare_s``: first preparation (read, tokenise, encode, write the cache) and its peak memory;
* ``cached_load_s``: the same DataModule from the cache in a fresh process (Lightning, which any
  training process imports, imported before the clock starts; pyarrow after);
* ``train_peak_pss_gb``: peak PSS summed over the process tree (pages shared by the DataLoader
  workers count once; ``psutil``, sampled every 0.1 s) of ``nlp-lib train`` running 50 steps of the
  recipe (``multi30k_seq2seq`` with word vocabularies capped by ``data.min_freq=5`` and the
  recipe's ``data.vocab_size=8000``, or
  ``sst_tree_lstm`` without GloVe) with ``data.num_workers=2``;
* ``loader_examples_per_s``: examples/s the training loader delivers with 2 workers, alone, vs
  ``train_examples_per_s``, what those 50 training steps consumed.

``--json`` prints one JSON object on the last line. ``--pairs``/``--trees`` choose the sizes
(``--streamed``: pair corpora measured again with ``data.streaming=true``)
(default: issue 19's 0.5M, 1M, 4M pairs and 0.5M, 2M trees). With today's design the pairs take
~20 minutes and peak at ~8 GB (4M) with the pre-Arrow design (``--baseline-rev c403a01`` runs
that code's first preparation of the 1M corpus side by side: ``prepare_vs_baseline``). Both kinds
prepare with ``data.num_proc=2``. Run it alone on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# the library under measurement: this checkout, or the older worktree a baseline worker was started in
TREE = Path(os.environ.get("NLP_LIB_BENCH_TREE", REPO)).resolve()
sys.path.insert(0, str(TREE))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import cpu_name, print_json  # noqa: E402

VOCAB_TYPES = 60_000
STEPS = 50


# ----------------------------------------------------------------------------- corpora


def _zipf_lines(rng, n: int, mean_len: float, prefix: str) -> list[str]:  # noqa: ANN001
    import numpy as np

    lengths = np.clip(rng.poisson(mean_len - 3, n) + 3, 1, 60)
    words = np.minimum(rng.zipf(1.2, int(lengths.sum())), VOCAB_TYPES) - 1
    ends = np.cumsum(lengths)
    starts = ends - lengths
    names = [f"{prefix}{i}" for i in range(VOCAB_TYPES)]
    return [" ".join(names[w] for w in words[s:e]) for s, e in zip(starts, ends, strict=True)]


def _generate_once(folder: Path, seed: int, write) -> Path:  # noqa: ANN001
    """``write(folder, rng)`` unless an earlier run finished it (a ``done`` marker): corpora are reused."""
    import numpy as np

    if not (folder / "done").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        write(folder, np.random.default_rng(seed))
        (folder / "done").write_text("")
    return folder


def make_pairs(folder: Path, n: int, seed: int) -> Path:
    """``train.src``/``train.tgt`` (n pairs) and ``val.*`` (1,000 pairs) under ``folder``."""

    def write(folder: Path, rng) -> None:  # noqa: ANN001
        for split, count in (("val", 1000), ("train", n)):
            for side, mean in (("src", 13.0), ("tgt", 12.0)):
                with open(folder / f"{split}.{side}", "w", encoding="utf-8") as f:
                    for start in range(0, count, 200_000):
                        f.write("\n".join(_zipf_lines(rng, min(200_000, count - start), mean, side[0])) + "\n")

    return _generate_once(folder, seed, write)


def _tree(rng, words: list[str]) -> str:  # noqa: ANN001
    nodes = [f"({rng.integers(5)} {w})" for w in words]
    while len(nodes) > 1:
        i = int(rng.integers(len(nodes) - 1))
        nodes[i : i + 2] = [f"({rng.integers(5)} {nodes[i]} {nodes[i + 1]})"]
    return nodes[0]


def make_trees(folder: Path, n: int, seed: int) -> Path:
    """SST-like ``train.txt`` (n trees) and ``dev.txt`` (1,000) under ``folder``."""

    def write(folder: Path, rng) -> None:  # noqa: ANN001
        for name, count in (("dev.txt", 1000), ("train.txt", n)):
            with open(folder / name, "w", encoding="utf-8") as f:
                for start in range(0, count, 100_000):
                    sents = _zipf_lines(rng, min(100_000, count - start), 19.0, "w")
                    f.write("\n".join(_tree(rng, s.split()) for s in sents) + "\n")

    return _generate_once(folder, seed, write)


# ----------------------------------------------------------------------------- measured processes


def overrides(kind: str, data: Path, cache: Path, old: bool = False) -> tuple[str, list[str]]:
    """The recipe and overrides of a measured process; ``old``: for the pre-Arrow code (no ``data.num_proc``)."""
    common = [f"data.path={data}", f"data.cache_dir={cache}", "data.num_workers=2"]
    common += [] if old else ["data.num_proc=2"]
    if kind in ("pairs", "streamed"):
        common += ["data.streaming=true"] if kind == "streamed" else []
        return "multi30k_seq2seq", [
            *common, "data.source=src", "data.target=tgt", "data.test=null", "data.tokenizer=word",
            "data.min_freq=5", "data.max_source_length=100", "data.max_target_length=100",
        ]  # fmt: skip
    return "sst_tree_lstm", [*common, "data.test_file=null", "model.embeddings=null", "model.cell.input_size=300"]


def worker(phase: str, kind: str, data: Path, cache: Path, run_dir: Path, old: bool = False) -> None:
    from importlib import resources

    import hydra
    import torch

    import nlp_lib
    from nlp_lib.cli import compose, train

    for name in ("nlp_lib", "nlp_lib.conf", "nlp_lib.recipes"):  # a baseline must not run this checkout's code
        where = Path(nlp_lib.__file__).parent if name == "nlp_lib" else Path(str(resources.files(name)))
        if TREE not in where.resolve().parents:
            raise SystemExit(f"measuring {TREE} but {name} comes from {where}")
    torch.set_num_threads(2)
    recipe, over = overrides(kind, data, cache, old)
    if phase in ("prepare", "cached", "loader"):
        cfg = compose(recipe, over)
        import nlp_lib.data.builders  # noqa: F401 - Lightning (~2 s), imported by any training process: not the data's cost

        start = time.perf_counter()
        dm = hydra.utils.instantiate(cfg.data)
        dm.prepare_data()
        dm.setup("fit")
        if phase != "loader":
            print(f"RESULT seconds={time.perf_counter() - start:.3f}", flush=True)
            return
        # from the 6th batch on (workers started and warm), or the 2nd in a tiny corpus; 200 batches
        loader = dm.train_dataloader()
        warm = min(5, max(len(loader) // 2, 1))
        examples, start = 0, time.perf_counter()
        for i, batch in enumerate(loader):
            if i == warm:
                start, examples = time.perf_counter(), 0
            examples += batch.num_trees if kind == "trees" else len(batch)
            if i == warm + 200:
                break
        print(f"RESULT examples_per_s={examples / (time.perf_counter() - start):.1f}", flush=True)
    else:
        extra = [f"run_dir={run_dir}", f"trainer.limit_train_batches={STEPS}", "trainer.limit_val_batches=0",
                 "trainer.max_epochs=1", "trainer.enable_progress_bar=false"]  # fmt: skip
        metrics = train(compose(recipe, [*over, *extra]))
        key = {"pairs": "sentences_per_s", "streamed": "sentences_per_s", "trees": "trees_per_s"}[kind]
        print(f"RESULT examples_per_s={metrics['train'][key]:.1f}", flush=True)


def _tree_pss(proc) -> float:  # noqa: ANN001
    import psutil

    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def measure(phase: str, kind: str, data: Path, cache: Path, run_dir: Path, tree: Path = REPO) -> dict:
    """Run one phase in a fresh process (this script, importing the library from ``tree``: this
    checkout, or an older one); its RESULT fields, wall seconds and peak PSS of its process tree."""
    import psutil

    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", phase, "--kind", kind, "--data", str(data)]
    cmd += ["--cache", str(cache), "--run-dir", str(run_dir)] + ([] if tree == REPO else ["--old"])
    env = {**os.environ, "OMP_NUM_THREADS": "2", "NLP_LIB_CACHE": str(cache), "PYTHONPATH": str(tree),
           "NLP_LIB_BENCH_TREE": str(tree)}  # fmt: skip
    start = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tree)
    proc, peak = psutil.Process(child.pid), [0.0]

    def sample() -> None:
        while child.poll() is None:
            try:
                peak[0] = max(peak[0], _tree_pss(proc))
            except psutil.NoSuchProcess:
                break
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = child.communicate()
    sampler.join()
    if child.returncode:
        raise SystemExit(f"{phase} {kind} {data} failed ({child.returncode}):\n{err[-4000:]}")
    line = next((x for x in out.splitlines() if x.startswith("RESULT")), None)
    if line is None:
        raise SystemExit(f"{phase} {kind} printed no RESULT line:\n{out[-2000:]}\n{err[-2000:]}")
    fields = {k: float(v) for k, v in (kv.split("=", 1) for kv in line.split()[1:])}
    return {**fields, "wall_s": round(time.perf_counter() - start, 2), "peak_pss_gb": round(peak[0] / 2**30, 3)}


def _worktree(rev: str) -> Path:
    """A checkout of ``rev`` under ``.bench/`` (made once), to run the older data path side by side."""
    sha = subprocess.run(["git", "rev-parse", rev], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
    path = REPO / ".bench" / f"data_scale-{sha[:12]}"
    if not path.exists():
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(path), sha], cwd=REPO, check=True, capture_output=True
        )
    # the installed (editable) package maps nlp_lib.conf and nlp_lib.recipes to this checkout's
    # folders; links inside the older tree's package make its own configs win there
    for name in ("conf", "recipes"):
        link = path / "nlp_lib" / name
        if not link.exists():
            link.symlink_to(Path("..") / name, target_is_directory=True)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=float, nargs="*", default=[0.5e6, 1e6, 4e6])
    ap.add_argument("--trees", type=float, nargs="*", default=[0.5e6, 2e6])
    ap.add_argument(
        "--streamed",
        type=float,
        nargs="*",
        default=[],
        help="pair corpora (the same files as --pairs) also measured with data.streaming=true",
    )
    ap.add_argument("--work", type=Path, default=None, help="corpora and caches (default: a temp dir)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    ap.add_argument(
        "--baseline-rev",
        default=None,
        help="also time the first preparation of the 1M-pair corpus (or the pair size closest to it) "
        "with the code of this git revision (a worktree under .bench/), side by side",
    )
    ap.add_argument("--worker", choices=["prepare", "cached", "loader", "train"], help=argparse.SUPPRESS)
    ap.add_argument("--kind", choices=["pairs", "streamed", "trees"], help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--run-dir", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--old", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--repeat", type=int, default=3, help="alternating repetitions of the baseline comparison")
    a = ap.parse_args()
    if a.worker:
        worker(a.worker, a.kind, a.data, a.cache, a.run_dir, a.old)
        return
    work = a.work or Path(tempfile.mkdtemp(prefix="nlp_lib_data_scale_"))
    rows = []
    for kind, sizes, make in (
        ("pairs", a.pairs, make_pairs),
        ("trees", a.trees, make_trees),
        ("streamed", a.streamed, make_pairs),
    ):
        for size in sizes:
            n = int(size)
            t0 = time.perf_counter()
            data = make(work / f"{'pairs' if kind == 'streamed' else kind}_{n}", n, a.seed)
            cache = work / f"cache_{kind}_{n}"
            row = {"kind": kind, "examples": n, "generate_s": round(time.perf_counter() - t0, 1)}
            shutil.rmtree(cache, ignore_errors=True)  # a first preparation, and a new run (the bench owns both)
            shutil.rmtree(work / f"run_{kind}_{n}", ignore_errors=True)
            for phase in ("prepare", "cached", "loader", "train"):
                row[phase] = measure(phase, kind, data, cache, work / f"run_{kind}_{n}")
                print(f"{kind} {n:,}: {phase} {row[phase]}", file=sys.stderr, flush=True)
            row["loader_vs_train"] = round(row["loader"]["examples_per_s"] / row["train"]["examples_per_s"], 2)
            rows.append(row)
    result = {"benchmark": "data_scale", "cpu": cpu_name(), "rows": rows}
    pairs = [r for r in rows if r["kind"] == "pairs"]
    if a.baseline_rev and pairs:
        row = min(pairs, key=lambda r: abs(r["examples"] - 1e6))
        old = _worktree(a.baseline_rev)
        n = row["examples"]
        data, nows, thens = work / f"pairs_{n}", [], []
        for _ in range(a.repeat):  # alternating, each from an empty cache
            for tree, out in ((REPO, nows), (old, thens)):
                cache = work / f"cache_pairs_{n}_{'again' if tree == REPO else 'baseline'}"
                shutil.rmtree(cache, ignore_errors=True)
                out.append(measure("prepare", "pairs", data, cache, work / "run_again", tree=tree))
                print(f"pairs {n:,}: prepare ({'now' if tree == REPO else a.baseline_rev}) {out[-1]}", file=sys.stderr)
        med = {k: statistics.median(r["seconds"] for r in v) for k, v in (("now", nows), ("then", thens))}
        result["baseline"] = {"rev": a.baseline_rev, "pairs": n, "prepare": thens, "prepare_now": nows,
                              "median_s": med}  # fmt: skip
        result["prepare_vs_baseline"] = round(med["now"] / med["then"], 3)
    if rows:
        result["max_cached_load_s"] = max(r["cached"]["seconds"] for r in rows)
        result["min_loader_vs_train"] = min(r["loader_vs_train"] for r in rows)
    for kind in ("pairs", "trees", "streamed"):
        mine = [r for r in rows if r["kind"] == kind]
        if len(mine) >= 2:
            result[f"{kind}_train_pss_ratio_largest_vs_smallest"] = round(
                mine[-1]["train"]["peak_pss_gb"] / mine[0]["train"]["peak_pss_gb"], 3
            )
    if a.json:
        print_json(result)
    else:
        print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
