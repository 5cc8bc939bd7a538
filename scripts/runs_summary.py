"""Mean and standard deviation of finished runs' metrics: the figure papers report over seeds.

    nlp-lib train -m recipe=sst_tree_lstm data.path=../shared/data/sst/trees seed=0,1,2,3,4
    python scripts/runs_summary.py runs/sst_tree_lstm/multirun_<time>     # every run below it
    python scripts/runs_summary.py RUN_DIR RUN_DIR ... --json

Reads each run's ``metrics.json`` (what ``nlp-lib train`` writes when a run ends: the best
checkpoint's validation metrics and, with a test split, its test metrics) and prints, per split and
metric, the mean, the sample standard deviation, the minimum and maximum, and the runs counted. A
folder without a ``metrics.json`` (a run still going, or killed) is named and left out.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path


def find_runs(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """``(finished runs, unfinished ones)``: each path a run directory or a folder of them (any depth)."""
    done, unfinished = [], []
    for path in paths:
        if not path.is_dir():
            raise SystemExit(f"{path}: not a directory")
        configs = {p.parent for p in path.rglob("config.yaml")}
        # a run's bundle/ (and anything else inside a run) has a config.yaml too: not a run of its own
        for run in sorted(c for c in configs if not any(parent in configs for parent in c.parents)):
            (done if (run / "metrics.json").is_file() else unfinished).append(run)
    return done, unfinished


def summarise(runs: list[Path]) -> dict[str, dict[str, dict[str, float]]]:
    """``{split: {metric: {mean, std, min, max, runs}}}`` over the numeric metrics the runs share."""
    values: dict[tuple[str, str], list[float]] = {}
    for run in runs:
        try:
            metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise SystemExit(f"{run / 'metrics.json'}: unreadable ({e})") from None
        for split in ("val", "test"):
            for name, value in (metrics.get(split) or {}).items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    values.setdefault((split, name), []).append(float(value))
    out: dict[str, dict[str, dict[str, float]]] = {}
    for (split, name), xs in sorted(values.items()):
        if len(xs) != len(runs):
            continue  # a metric some runs lack (another recipe among them)
        out.setdefault(split, {})[name] = {
            "mean": statistics.fmean(xs),
            "std": statistics.stdev(xs) if len(xs) > 1 else 0.0,
            "min": min(xs),
            "max": max(xs),
            "runs": len(xs),
        }
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paths", type=Path, nargs="+", help="run directories, or folders holding them (a multirun)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    runs, unfinished = find_runs(a.paths)
    for run in unfinished:
        print(f"{run}: no metrics.json (not finished): left out", file=sys.stderr)
    if not runs:
        raise SystemExit(
            "no finished run (a directory with config.yaml and metrics.json) under " + ", ".join(map(str, a.paths))
        )
    summary = summarise(runs)
    if a.json:
        print(json.dumps({"runs": [str(r) for r in runs], "metrics": summary}))
        return
    print(f"{len(runs)} runs")
    for split, metrics in summary.items():
        for name, s in metrics.items():
            print(f"{split}/{name}: {s['mean']:.4f} ± {s['std']:.4f} (min {s['min']:.4f}, max {s['max']:.4f})")


if __name__ == "__main__":
    main()
