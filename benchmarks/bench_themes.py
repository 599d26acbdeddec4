"""Feedback theming at scale: items end to end with either engine; wall time, peak memory.

    python benchmarks/bench_themes.py [--items 100000] [--codebook] [--out /tmp/bench_themes]
    python benchmarks/bench_themes.py --items 10000 --engine embeddings   # the embeddings target

The feedback comes from the sample generator (`workbench.sample.generate_sample`), which plants
themes, a late-emerging theme, duplicates and messy text; with --codebook the planted themes'
codebook entries are passed too. Prints a table with the wall time of one `theme_feedback` call
(reading and generating the data excluded) and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench.sample import generate_sample  # noqa: E402
from workbench.themes import theme_feedback  # noqa: E402


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--codebook", action="store_true", help="pass the planted codebook")
    parser.add_argument("--out", default="/tmp/bench_themes_data")
    parser.add_argument("--jobs", type=int, default=1, help="processes for sentiment scoring")
    parser.add_argument("--engine", choices=["tfidf", "embeddings"], default="tfidf")
    args = parser.parse_args()

    out = Path(args.out) / f"{args.items}"
    if not (out / "feedback.parquet").exists():
        t = time.perf_counter()
        generate_sample(out, users=args.users, feedback=args.items)
        print(f"generated sample in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    feedback = pd.read_parquet(out / "feedback.parquet")
    truth = json.loads((out / "truth.json").read_text())["feedback"]
    codebook = None
    if args.codebook:
        codebook = [
            {
                "id": k,
                "label": v["label"],
                "description": v["description"],
                "examples": v["examples"],
            }
            for k, v in truth["themes"].items()
        ]
    rss_before = peak_rss_mb()
    start = time.perf_counter()  # for embeddings this includes loading the model
    result = theme_feedback(
        feedback,
        engine=args.engine,
        codebook=codebook,
        discover="auto",
        period="week",
        baseline_periods=8,
        recent_periods=4,
        segments=["plan", "source"],
        seed=0,
        n_jobs=args.jobs,
    )
    wall = time.perf_counter() - start
    overview = result.tables["overview"].iloc[0]
    rows = [
        ("items", f"{len(feedback):,}"),
        ("engine", result.engine_detail),
        ("codebook", "planted (9 themes)" if codebook else "none"),
        ("analysed after duplicates", f"{int(overview['analysed']):,}"),
        (
            "duplicates collapsed (exact / near)",
            f"{int(overview['exact_duplicates_collapsed']):,} / "
            f"{int(overview['near_duplicates_collapsed']):,}",
        ),
        (
            "themes (codebook + discovered)",
            f"{int(overview['codebook_themes'])} + {int(overview['discovered_themes'])}",
        ),
        ("unassigned share", f"{overview['unassigned_share']:.1%}"),
        ("emerging themes", ", ".join(result.tables["themes"].query("emerging")["label"])),
        ("sentiment processes", str(args.jobs)),
        ("wall time (s)", f"{wall:.1f}"),
        ("peak RSS before / after (MB)", f"{rss_before:,.0f} / {peak_rss_mb():,.0f}"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
