"""Theming quality on banking77 (Casanueva et al. 2020, CC-BY-4.0): discovery NMI against the 77
intents, codebook accuracy with 10 examples per intent, and same-seed determinism.

    python benchmarks/eval_banking77.py [--split test|train] [--seeds 3]

Data: /work/shared/eval/banking77 (override with BANKING77_DIR). `--split test` (default) reports
on test.csv (3,080 messages); `--split train` runs the same measurements on a 40-per-intent sample
of train.csv, which is the only split defaults were chosen on. Codebook examples always come from
train.csv (a seeded draw of 10 per intent, never an evaluated message).

    python benchmarks/eval_banking77.py --engine embeddings   # needs the `embeddings` extra

Engine: `tfidf` (LSA, default) or `embeddings` (sentence-transformers, default model
all-MiniLM-L6-v2, or --model NAME_OR_PATH). Embeddings do not depend on the seed, so they are
computed once per text set and reused across seeds.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench.themes import _Space  # noqa: E402
from workbench.themes_cluster import (  # noqa: E402
    CodebookTheme,
    assign_codebook,
    discover_themes,
    resolve_engine,
)
from workbench.themes_text import analysis_text, clean_text  # noqa: E402

DATA = Path(os.environ.get("BANKING77_DIR", "/work/shared/eval/banking77"))
ENGINE: dict[str, object] = {"engine": "tfidf"}
_CACHE: dict[tuple, _Space] = {}


def space(texts: list[str], codebook: list[CodebookTheme], seed: int) -> _Space:
    """Vectors of texts and codebook texts in the chosen engine (cached when seed-free)."""
    engine = ENGINE["engine"]
    if isinstance(engine, str):
        return _Space.build(texts, codebook, engine, seed)
    key = (tuple(texts), tuple(codebook))
    if key not in _CACHE:
        _CACHE[key] = _Space.build(texts, codebook, engine, seed)
    return _CACHE[key]


def load(split: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(evaluated messages, pool for codebook examples)."""
    train = pd.read_csv(DATA / "train.csv")
    if split == "test":
        return pd.read_csv(DATA / "test.csv"), train
    evaluated = train.sample(frac=1.0, random_state=12345).groupby("category").head(40)
    return evaluated.reset_index(drop=True), train.drop(index=evaluated.index)


def discovery(texts: list[str], truth: np.ndarray, k: int | str, seed: int) -> dict:
    """NMI/ARI of the forced partition (every item in a theme) and of the pipeline's output
    (weak members and small themes unassigned, unassigned counted as one more cluster)."""
    start = time.perf_counter()
    vectors = space(texts, [], seed)
    method = getattr(vectors.engine, "discovery", "kmeans")
    forced = discover_themes(
        vectors.items, k, seed=seed, min_theme_size=1, min_similarity=-1.0, method=method
    )
    pipeline = discover_themes(
        vectors.items,
        k,
        seed=seed,
        min_theme_size=10,
        min_similarity=vectors.engine.min_similarity,
        method=method,
    )
    return {
        "k": forced.k_fitted,
        "nmi": normalized_mutual_info_score(truth, forced.labels),
        "ari": adjusted_rand_score(truth, forced.labels),
        "nmi_pipeline": normalized_mutual_info_score(truth, pipeline.labels),
        "coverage_pipeline": float((pipeline.labels >= 0).mean()),
        "labels": forced.labels,
        "seconds": time.perf_counter() - start,
    }


def codebook_accuracy(evaluated: pd.DataFrame, pool: pd.DataFrame, seed: int) -> dict:
    """Accuracy of the best codebook theme (forced), and of the pipeline's assignment where
    unassigned items count as wrong, with 10 seeded examples per intent as the codebook."""
    examples = pool.sample(frac=1.0, random_state=seed).groupby("category").head(10)
    intents = sorted(examples["category"].unique())
    codebook = [
        CodebookTheme(
            id=intent,
            label=intent.replace("_", " "),
            examples=tuple(examples.loc[examples["category"] == intent, "text"]),
        )
        for intent in intents
    ]
    texts = [analysis_text(clean_text(t)) for t in evaluated["text"]]
    vectors = space(texts, codebook, seed)
    result = assign_codebook(
        vectors.items,
        vectors.theme_vectors,
        vectors.theme_of_vector,
        len(codebook),
        z_min=vectors.engine.codebook_z,
        seed=seed,
        **vectors.codebook_sparse(),
    )
    truth = evaluated["category"].map({c: i for i, c in enumerate(intents)}).to_numpy()
    primary = np.array([t[0] if t else -1 for t in result.themes])
    assigned = primary >= 0
    return {
        "accuracy_forced": float((result.predicted == truth).mean()),
        "accuracy_assigned_or_wrong": float((primary == truth).mean()),
        "coverage": float(assigned.mean()),
        "precision_assigned": float((primary[assigned] == truth[assigned]).mean()),
        "multi_label_share": float(np.mean([len(t) > 1 for t in result.themes])),
        "themes": result.themes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=["test", "train"], default="test")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--engine", choices=["tfidf", "embeddings"], default="tfidf")
    parser.add_argument("--model", default=None, help="embedding model name or path")
    args = parser.parse_args()
    if args.engine == "embeddings":
        ENGINE["engine"], _ = resolve_engine("embeddings", args.model)
    evaluated, pool = load(args.split)
    texts = [analysis_text(clean_text(t)) for t in evaluated["text"]]
    truth = evaluated["category"].to_numpy()
    seeds = list(range(args.seeds))
    rows = []
    determinism = []
    for k in (77, "auto"):
        runs = [discovery(texts, truth, k, s) for s in seeds]
        again = discovery(texts, truth, k, seeds[0])
        determinism.append(bool(np.array_equal(again["labels"], runs[0]["labels"])))
        for name in ("nmi", "ari", "nmi_pipeline", "coverage_pipeline"):
            values = [r[name] for r in runs]
            rows.append((f"discovery k={k}", name, np.mean(values), np.min(values), np.max(values)))
        rows.append(
            (
                f"discovery k={k}",
                "k fitted",
                *(
                    np.mean([r["k"] for r in runs]),
                    min(r["k"] for r in runs),
                    max(r["k"] for r in runs),
                ),
            )
        )
        seconds = [r["seconds"] for r in runs]
        rows.append(
            (f"discovery k={k}", "seconds per run", np.mean(seconds), min(seconds), max(seconds))
        )
    cb = [codebook_accuracy(evaluated, pool, s) for s in seeds]
    again = codebook_accuracy(evaluated, pool, seeds[0])
    determinism.append(again["themes"] == cb[0]["themes"])
    for name in (
        "accuracy_forced",
        "accuracy_assigned_or_wrong",
        "coverage",
        "precision_assigned",
        "multi_label_share",
    ):
        values = [r[name] for r in cb]
        rows.append(("codebook 10/intent", name, np.mean(values), np.min(values), np.max(values)))

    print(
        f"banking77 {args.split}: {len(evaluated):,} messages, 77 intents, "
        f"engine {args.engine}{' ' + args.model if args.model else ''}, seeds {seeds}"
    )
    print(f"{'measure':<22} {'metric':<28} {'mean':>7} {'min':>7} {'max':>7}")
    for what, metric, mean, low, high in rows:
        print(f"{what:<22} {metric:<28} {mean:>7.3f} {low:>7.3f} {high:>7.3f}")
    print(f"same seed gives identical assignments: {all(determinism)}")


if __name__ == "__main__":
    main()
