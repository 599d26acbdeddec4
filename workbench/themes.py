"""Feedback theming: what customers tell us, which themes grow, how they feel.

`theme_feedback` runs the whole pipeline over a feedback frame (the `feedback` table contract:
`feedback_id`, `created_at`, `text`, optional `score` 0-10, `source`, `user_id`, segment
columns) and returns a `FeedbackThemes` result. The steps are public too:

1. `clean_text` / `analysis_text` - strip URLs, @handles and signatures; HTML stays as text in
   quotes (escaped at render) and is removed only from the text that is scored.
2. `collapse_duplicates` - exact and near duplicates from the same voice count once.
3. `assign_codebook` - known themes, several per item allowed, threshold calibrated per theme.
4. `discover_themes` - new themes among the rest (seeded spherical k-means on LSA vectors, or
   Leiden communities of a nearest-neighbour graph of sentence embeddings), weak members left
   unassigned; `label_themes` - c-TF-IDF keyphrases; `pick_quotes`.
5. `sentiment` (VADER), `nps_by_theme` (NPS and impact), `theme_trends` (volume, share,
   Poisson spikes, emerging themes with their lift).

The same data, parameters and seed give the same themes: items are put in a canonical order
(time, then id) first, and every random choice is seeded.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import altair as alt
import ibis
import numpy as np
import pandas as pd
from scipy import sparse

from workbench.engine import local_time
from workbench.errors import DataContractError, ParameterError
from workbench.parameters import FeedbackThemingParameters
from workbench.readout import Heading, Table
from workbench.results import AnalysisResult, Check, KeyNumber, records
from workbench.themes_cluster import (
    CodebookAssignment,
    CodebookTheme,
    Discovery,
    Engine,
    EngineUnavailable,
    SentenceEmbeddingEngine,
    TfidfEngine,
    keyphrases,
    parse_codebook,
    resolve_engine,
    term_counts,
)
from workbench.themes_cluster import (
    assign_codebook as _assign_vectors,
)
from workbench.themes_cluster import (
    discover_themes as _discover_vectors,
)
from workbench.themes_cluster import (
    pick_quotes as _pick_quotes,
)
from workbench.themes_readout import (
    ThemeCards,
    segment_chart,
    theme_trend_chart,
    themes_chart,
    volume_chart,
)
from workbench.themes_stats import nps, nps_by_theme, period_start, sentiment, theme_trends
from workbench.themes_text import (
    MAX_ANALYSIS_CHARS,
    Duplicates,
    SparseFeatures,
    analysis_text,
    clean_text,
    find_duplicates,
    has_html,
    has_script,
    language_flag,
    normalised_key,
    redact,
    tokens,
)

__all__ = [
    "CodebookTheme",
    "Engine",
    "EngineUnavailable",
    "FeedbackThemes",
    "SentenceEmbeddingEngine",
    "TfidfEngine",
    "analysis_text",
    "assign_codebook",
    "clean_text",
    "collapse_duplicates",
    "discover_themes",
    "feedback_theming",
    "label_themes",
    "language_flag",
    "nps",
    "nps_by_theme",
    "parse_codebook",
    "pick_quotes",
    "redact",
    "sentiment",
    "theme_feedback",
    "theme_trends",
]

UNASSIGNED = "unassigned"
BROWSER_QUOTES = 10  # quotes kept per theme for the theme browser
_NO_TRENDS = pd.DataFrame(
    columns=["period", "theme_id", "count", "items", "share", "complete", "expected", "p_value"]
    + ["spike"]
)
THEME_COLUMNS = [
    "theme_id",
    "label",
    "origin",
    "count",
    "share",
    "sentiment_mean",
    "nps",
    "nps_responses",
    "nps_impact",
    "emerging",
    "spike",
    "lift",
    "recent_count",
    "baseline_count",
    "trend_p_value",
    "keyphrases",
    "quotes",
]


@dataclass
class FeedbackThemes(AnalysisResult):
    """Theming result: `tables["themes"]`, `tables["trends"]`, `tables["overview"]` (and
    `tables["segments"]` when segments were asked for), the per-item `items` frame and the
    unassigned share. `themes_csv()` is the item -> themes file for downstream tools."""

    items: pd.DataFrame = field(default_factory=pd.DataFrame)
    unassigned_share: float = float("nan")
    engine: str = "tfidf"
    engine_detail: str = ""
    quote_pool: dict[str, list[str]] = field(default_factory=dict)

    def results_json(self) -> dict[str, Any]:
        """summary.json `results`: every table as records, plus `unassigned_share`."""
        out: dict[str, Any] = {name: records(frame) for name, frame in self.tables.items()}
        share = self.unassigned_share
        out["unassigned_share"] = None if share != share else float(share)
        return out

    def themes_csv(self) -> pd.DataFrame:
        """One row per input item: feedback_id, theme_ids (";"-separated, best first, empty
        when unassigned), primary_theme, status (analysed / duplicate / empty) and, for a
        duplicate, the feedback_id of the item it was counted with."""
        return self.items[["feedback_id", "theme_ids", "primary_theme", "status", "duplicate_of"]]

    def write_themes_csv(self, path: str | Path) -> None:
        """Write `themes_csv()` as CSV (UTF-8, no index)."""
        self.themes_csv().to_csv(path, index=False)

    def publish_themes_csv(self, run: Any) -> Path | None:
        """Write themes.csv beside the readout in a scheduled run; nothing when interactive."""
        run_dir = run.context.get("run_dir")
        if not run_dir:
            return None
        path = Path(run_dir) / "themes.csv"
        self.write_themes_csv(path)
        return path

    def cards(self, top: int = 8) -> ThemeCards:
        """The top themes as cards, emerging ones first."""
        return ThemeCards(self.tables["themes"], self.tables.get("trends", _NO_TRENDS), top=top)

    def volume_chart(self) -> alt.Chart:
        """Share of feedback per period for the emerging and the largest themes."""
        return volume_chart(self.tables["themes"], self.tables["trends"])

    def themes_chart(self) -> alt.Chart:
        """Every theme by number of items, codebook and discovered."""
        return themes_chart(self.tables["themes"])

    def segment_view(self) -> alt.Chart | Heading:
        """Theme x segment heatmap, or a note when no segment was asked for."""
        if "segments" not in self.tables or not len(self.tables["segments"]):
            return Heading("Themes by segment", "No segments were asked for (key 'segments').", 3)
        return segment_chart(self.tables["themes"], self.tables["segments"])

    def theme_table(self) -> Table:
        """Every theme with its numbers."""
        columns = ["theme_id", "label", "origin", "count", "share", "sentiment_mean", "nps"]
        columns += ["nps_impact", "emerging", "spike", "lift"]
        return Table(
            self.tables["themes"][columns].sort_values(["origin", "count"], ascending=[1, 0]),
            caption="Every theme: items (after duplicates), share of analysed items, mean "
            "sentiment (-1 to +1), NPS of its respondents and its impact on overall NPS, flags.",
            units={"share": "share"},
            max_rows=200,
        )

    def theme_detail(self, theme: str, segment: str | None = None) -> list[Any]:
        """One theme for the browser: heading, trend chart, share by segment, more quotes."""
        themes = self.tables["themes"].set_index("theme_id")
        row = themes.loc[theme]
        trends = self.tables["trends"]
        parts: list[Any] = [
            Heading(str(row["label"]), f"{row['origin']} theme, {int(row['count']):,} items", 3),
            theme_trend_chart(str(row["label"]), trends[trends["theme_id"] == theme]),
        ]
        seg = self.tables.get("segments")
        if seg is not None and segment is not None:
            rows = seg[(seg["theme_id"] == theme) & (seg["segment"] == segment)]
            parts.append(
                Table(
                    rows[["value", "items", "count", "share"]],
                    caption=f"Share of each {segment}'s items in this theme.",
                    units={"share": "share"},
                )
            )
        quotes = self.quote_pool.get(theme, [])
        parts.append(Table(pd.DataFrame({"quote": quotes}), caption="Quotes nearest the centre."))
        return parts

    def browse_theme(self, theme: str | None = None, segment: str | None = None) -> None:
        """The theme browser's view: show `theme_detail` (for `wb.explore`)."""
        from IPython.display import display

        if theme is None:
            display(Heading("No theme to browse", "No theme was found in this feedback.", 3))
            return
        display(*self.theme_detail(theme, segment))

    def browser_choices(self) -> dict[str, list[Any]]:
        """Options for the theme browser: themes (emerging and largest first) and segments."""
        order = self.cards(top=len(self.tables["themes"])).ordered()
        segments = self.tables.get("segments")
        names = list(dict.fromkeys(segments["segment"])) if segments is not None else []
        return {"theme": list(order["theme_id"]), "segment": names or [None]}


# --- The readout --------------------------------------------------------------------------------


def feedback_theming(
    tables: dict[str, ibis.Table], params: FeedbackThemingParameters
) -> FeedbackThemes:
    """The feedback theming readout: read the feedback in the data window, theme it."""
    feedback = tables["feedback"]
    zone = params.timezone
    if params.window.start or params.window.end:
        day = local_time(feedback.created_at, zone).date()
        if params.window.start:
            feedback = feedback.filter(day >= params.window.start)
        if params.window.end:
            feedback = feedback.filter(day <= params.window.end)
    wanted = ["feedback_id", "created_at", "text", "score", "user_id", "source"]
    columns = [c for c in dict.fromkeys(wanted + params.segments) if c in feedback.columns]
    frame = feedback.select(*columns).execute()
    data_end = None
    if params.window.end:
        end = pd.Timestamp(params.window.end + dt.timedelta(days=1)).tz_localize(zone)
        data_end = end.tz_convert("UTC")
    return theme_feedback(
        frame,
        codebook=params.codebook_themes(),
        discover=params.discover,
        engine=params.engine,
        embedding_model=params.embedding_model,
        period=params.period,
        baseline_periods=params.baseline_periods,
        recent_periods=params.recent_periods,
        min_theme_size=params.min_theme_size,
        quotes_per_theme=params.quotes_per_theme,
        redact=params.redact,
        segments=params.segments,
        seed=params.seed,
        timezone=zone,
        data_end=data_end,
    )


# --- Public steps --------------------------------------------------------------------------------


def collapse_duplicates(
    texts: Sequence[str],
    voices: Sequence[Any] | None = None,
    *,
    near_threshold: float = 0.9,
    seed: int = 0,
) -> Duplicates:
    """Exact and near-duplicate groups among `texts` (in the order given: the first of a group
    is kept). Only texts of the same voice (e.g. user) are compared when `voices` is given.
    Near duplicates: cosine >= `near_threshold` between character n-gram tf-idf vectors."""
    cleaned = [analysis_text(clean_text(t)) for t in texts]
    features = SparseFeatures.build([tokens(t) for t in cleaned])
    voice = None if voices is None else np.asarray(pd.Series(list(voices)).fillna("\x00"))
    return find_duplicates(
        [normalised_key(t) for t in cleaned],
        voice,
        features.chars,
        near_threshold=near_threshold,
        seed=seed,
    )


def assign_codebook(
    texts: Sequence[str],
    codebook: Any,
    *,
    engine: str | Engine = "tfidf",
    seed: int = 0,
    z_min: float = 3.0,
) -> list[list[str]]:
    """Codebook theme ids per text (best first; [] when none fits). See
    `themes_cluster.assign_codebook` for the method."""
    themes = parse_codebook(codebook)
    space = _Space.build([analysis_text(clean_text(t)) for t in texts], themes, engine, seed)
    result = _assign_vectors(
        space.items,
        space.theme_vectors,
        space.theme_of_vector,
        len(themes),
        z_min=z_min,
        seed=seed,
        **space.codebook_sparse(),
    )
    return [[themes[t].id for t in item] for item in result.themes]


def discover_themes(
    texts: Sequence[str],
    n_themes: int | str = "auto",
    *,
    seed: int = 0,
    engine: str | Engine = "tfidf",
    min_theme_size: int = 10,
) -> Discovery:
    """Discover themes among `texts` (see `themes_cluster.discover_themes`)."""
    space = _Space.build([analysis_text(clean_text(t)) for t in texts], [], engine, seed)
    return _discover_vectors(
        space.items,
        n_themes,
        seed=seed,
        min_theme_size=min_theme_size,
        min_similarity=space.engine.min_similarity,
        method=getattr(space.engine, "discovery", "kmeans"),
    )


def label_themes(texts: Sequence[str], labels: Sequence[int], top: int = 3) -> dict[int, str]:
    """Readable label per theme (label >= 0) from c-TF-IDF keyphrases of its texts."""
    labels = np.asarray(labels)
    classes = sorted(int(c) for c in np.unique(labels) if c >= 0)
    counts, vocabulary = term_counts([tokens(analysis_text(clean_text(t))) for t in texts])
    column = {c: j for j, c in enumerate(classes)}
    membership = _membership_matrix(
        [[column[int(c)]] if c >= 0 else [len(classes)] for c in labels], len(classes) + 1
    )
    phrases = keyphrases(counts, vocabulary, membership, top=top)
    return {c: _label_from(phrases[j], f"theme {c + 1}") for c, j in column.items()}


def pick_quotes(
    texts: Sequence[str], n: int = 3, *, redact_quotes: bool = False, seed: int = 0
) -> list[str]:
    """Quotes for one theme's texts: nearest its centre, no two near-duplicates."""
    space = _Space.build([analysis_text(clean_text(t)) for t in texts], [], "tfidf", seed)
    centre = space.items.mean(axis=0)
    centre = centre / max(np.linalg.norm(centre), 1e-12)
    display = [clean_text(t) for t in texts]
    return _pick_quotes(
        np.arange(len(texts)),
        space.items,
        centre,
        space.features.chars,
        display,
        n=n,
        redact_quotes=redact_quotes,
    )


# --- The pipeline ------------------------------------------------------------------------------


def theme_feedback(
    feedback: pd.DataFrame,
    *,
    codebook: Any = None,
    discover: int | str | None = "auto",
    engine: str | Engine = "tfidf",
    embedding_model: str | None = None,
    period: str = "week",
    baseline_periods: int = 8,
    recent_periods: int = 1,
    min_theme_size: int = 10,
    quotes_per_theme: int = 3,
    redact: bool = True,
    segments: Sequence[str] = (),
    seed: int = 0,
    timezone: str = "UTC",
    data_end: Any = None,
    near_duplicate_threshold: float = 0.9,
    voice_column: str | None = "user_id",
    min_lift: float = 2.0,
    alpha: float = 0.01,
    codebook_z: float | None = None,
    n_jobs: int = 1,
) -> FeedbackThemes:
    """Theme a feedback frame end to end; see the module docstring for the steps.

    `discover`: how many themes to look for beyond the codebook, "auto", or 0 / None for none.
    `voice_column`: duplicates are collapsed within the same value of this column (the same
    customer) when the column exists, else across all items. `data_end`: end of the data window
    (exclusive), used to tell complete periods; defaults to the latest item. `n_jobs` > 1
    scores sentiment in worker processes (the slowest step at 100k items; same results).
    """
    params = _check_parameters(
        discover,
        period,
        baseline_periods,
        recent_periods,
        min_theme_size,
        quotes_per_theme,
        near_duplicate_threshold,
    )
    try:
        themes_cb = parse_codebook(codebook)
    except ValueError as error:
        raise ParameterError([str(error)], source="codebook") from error
    frame = _canonical(feedback, segments)
    checks: list[Check] = []
    n_in = len(frame)

    display = [clean_text(t) for t in frame["text"].tolist()]
    scored = [analysis_text(t) for t in display]
    token_lists = [tokens(t) for t in scored]
    has_words = np.array([any(w.isalpha() for w in ws) for ws in token_lists], dtype=bool)
    status = np.where(has_words, "analysed", "empty").astype(object)
    raw_lengths = np.array([len(t) for t in display])

    checks.append(_html_check(display))
    long_items = int((raw_lengths > MAX_ANALYSIS_CHARS).sum())
    checks.append(
        Check(
            "very long texts",
            "warn" if long_items else "pass",
            f"{long_items:,} item(s) longer than {MAX_ANALYSIS_CHARS:,} characters; only the "
            "first part is scored and quotes are shortened",
        )
    )

    nonempty = np.flatnonzero(has_words)
    n_empty = n_in - len(nonempty)
    checks.append(
        Check(
            "empty texts",
            "pass" if n_empty == 0 else "warn",
            f"{n_empty:,} of {n_in:,} item(s) empty after removing links, handles, signatures "
            "and markup; dropped",
        )
    )
    if len(nonempty) == 0:
        checks.append(Check("feedback to theme", "fail", "no item has any text to theme"))
        return _empty_result(frame, status, checks)

    cb_texts, cb_theme = [], []
    for t, theme in enumerate(themes_cb):
        for text in theme.texts():
            cb_texts.append(analysis_text(clean_text(text)))
            cb_theme.append(t)
    features = SparseFeatures.build(
        [token_lists[i] for i in nonempty] + [tokens(t) for t in cb_texts]
    )
    n_ne = len(nonempty)

    # Duplicates: one voice pasting the same text counts once.
    voices = None
    if voice_column and voice_column in frame.columns:
        voices = frame[voice_column].astype("string").fillna("\x00").to_numpy()[nonempty]
    dups = find_duplicates(
        [normalised_key(scored[i]) for i in nonempty],
        voices,
        features.chars[:n_ne],
        near_threshold=params["near"],
        seed=seed,
    )
    duplicate_of = np.full(n_in, None, dtype=object)
    rep_rows = nonempty[dups.representative]
    ids = frame["feedback_id"].astype(str).to_numpy()
    moved = ~dups.kept
    duplicate_of[nonempty[moved]] = ids[rep_rows[moved]]
    status[nonempty[moved]] = "duplicate"
    checks.append(
        Check(
            "duplicates collapsed",
            "pass",
            f"{dups.exact_collapsed:,} exact and {dups.near_collapsed:,} near duplicate(s) "
            f"counted once ({'same ' + voice_column if voices is not None else 'all items'})",
        )
    )

    kept_pos = np.flatnonzero(dups.kept)  # positions within nonempty
    kept_rows = nonempty[kept_pos]  # rows of frame
    n_kept = len(kept_rows)
    language = np.array([language_flag(scored[i], token_lists[i]) for i in kept_rows], dtype=object)
    non_en = language == "non_en"
    checks.append(
        Check(
            "non-English texts",
            "warn" if non_en.any() else "pass",
            f"{int(non_en.sum()):,} of {n_kept:,} item(s) look non-English (stop-word check); "
            "left unassigned",
        )
    )
    themable_pos = kept_pos[~non_en]  # within nonempty
    themable_rows = nonempty[themable_pos]
    n_th = len(themable_rows)

    # Vectors for themable items and codebook texts.
    try:
        engine_obj, engine_note = resolve_engine(engine, embedding_model)
    except (EngineUnavailable, ValueError, TypeError) as why:
        raise ParameterError([str(why)], source="engine") from why
    if engine_note:
        checks.append(Check("engine", "warn", engine_note))
    params["codebook_z"] = (
        getattr(engine_obj, "codebook_z", 3.0) if codebook_z is None else float(codebook_z)
    )
    cb_rows = np.arange(n_ne, n_ne + len(cb_texts))
    sub_rows = np.concatenate([themable_pos, cb_rows]).astype(np.int64)
    sub_features = SparseFeatures(features.matrix[sub_rows], features.chars[sub_rows])
    vectors = engine_obj.embed(
        [scored[i] for i in themable_rows] + cb_texts, sub_features, n_th, seed
    )
    item_vectors, cb_vectors = vectors[:n_th], vectors[n_th:]
    item_chars = sub_features.chars[:n_th]
    sparse_rows = (
        {"item_sparse": sub_features.matrix[:n_th], "theme_sparse": sub_features.matrix[n_th:]}
        if getattr(engine_obj, "codebook_sparse", False)
        else {}
    )

    # Codebook themes.
    theme_lists: list[list[int]] = [[] for _ in range(n_th)]
    codebook_result: CodebookAssignment | None = None
    if themes_cb and n_th:
        codebook_result = _assign_vectors(
            item_vectors,
            cb_vectors,
            np.asarray(cb_theme),
            len(themes_cb),
            z_min=params["codebook_z"],
            seed=seed,
            **sparse_rows,
        )
        theme_lists = [list(t) for t in codebook_result.themes]
        matched = np.bincount([t for ts in theme_lists for t in ts], minlength=len(themes_cb))
        unmatched = [themes_cb[t].id for t in range(len(themes_cb)) if matched[t] == 0]
        checks.append(
            Check(
                "codebook themes matched",
                "warn" if unmatched else "pass",
                f"{len(themes_cb) - len(unmatched)} of {len(themes_cb)} codebook theme(s) "
                "matched at least one item"
                + (f"; no match: {', '.join(unmatched)}" if unmatched else ""),
            )
        )

    # Discovery among the rest.
    rest = np.array([i for i in range(n_th) if not theme_lists[i]], dtype=np.int64)
    discovery: Discovery | None = None
    n_cb = len(themes_cb)
    if params["discover"] != 0 and len(rest):
        requested = params["discover"]
        possible = len(rest) // min_theme_size
        if isinstance(requested, int) and requested > possible:
            checks.append(
                Check(
                    "themes requested",
                    "warn",
                    f"{requested} new theme(s) requested but only {len(rest):,} item(s) are "
                    f"left to discover them in (at least {min_theme_size} per theme): looked "
                    f"for {possible}",
                )
            )
            requested = possible
        if requested != 0:
            discovery = _discover_vectors(
                item_vectors[rest],
                requested,
                seed=seed,
                min_theme_size=min_theme_size,
                min_similarity=engine_obj.min_similarity,
                method=getattr(engine_obj, "discovery", "kmeans"),
            )
            for j, label in zip(rest, discovery.labels, strict=True):
                if label >= 0:
                    theme_lists[j] = [n_cb + int(label)]
    elif params["discover"] != 0:
        checks.append(Check("themes requested", "pass", "no items left to discover themes in"))
    n_disc = 0 if discovery is None else len(discovery.centres)
    n_themes = n_cb + n_disc

    # Membership of analysed (kept) items, themable ones in their kept order.
    kept_themes: list[list[int]] = [[] for _ in range(n_kept)]
    themable_in_kept = np.flatnonzero(~non_en)
    for j, k in enumerate(themable_in_kept):
        kept_themes[k] = theme_lists[j]
    member = _membership_matrix(kept_themes, n_themes)  # kept x themes
    unassigned = np.array([not ts for ts in kept_themes])
    unassigned_share = float(unassigned.mean()) if n_kept else float("nan")

    # Labels: c-TF-IDF over the analysed items, unassigned items as one more class.
    counts, vocabulary = term_counts([token_lists[i] for i in kept_rows])
    classes = _membership_matrix([ts if ts else [n_themes] for ts in kept_themes], n_themes + 1)
    centres_all = _theme_centres(item_vectors, theme_lists, n_themes, discovery, n_cb)
    phrases = keyphrases(
        counts,
        vocabulary,
        classes,
        top=3,
        engine=engine_obj,
        centres=np.vstack([centres_all, np.zeros((1, centres_all.shape[1]))]),
    )[:n_themes]
    theme_ids = [t.id for t in themes_cb] + [f"new_{d + 1:02d}" for d in range(n_disc)]
    labels = [t.label for t in themes_cb] + [
        _label_from(phrases[n_cb + d], f"new theme {d + 1}") for d in range(n_disc)
    ]

    # Quotes from the display text.
    display_th = [display[i] for i in themable_rows]
    members_th = _members(theme_lists, n_themes)
    # picked greedily, so the first `quotes_per_theme` are what a call for that many returns
    quote_pool = [
        _pick_quotes(
            members_th[t],
            item_vectors,
            centres_all[t],
            item_chars,
            display_th,
            n=max(quotes_per_theme, BROWSER_QUOTES),
            redact_quotes=redact,
        )
        for t in range(n_themes)
    ]
    quotes = [pool[:quotes_per_theme] for pool in quote_pool]

    # Sentiment, NPS, trends.
    sent = sentiment([scored[i] for i in kept_rows], n_jobs=n_jobs)
    kept_frame = frame.iloc[kept_rows].reset_index(drop=True)
    membership_df = (
        pd.DataFrame(member.toarray().astype(bool), columns=theme_ids)
        if n_themes
        else pd.DataFrame(index=range(n_kept))
    )
    score, score_check = _scores(kept_frame)
    if score_check:
        checks.append(score_check)
    nps_frame = nps_by_theme(score, membership_df) if score is not None else None
    periods = period_start(kept_frame["created_at"], period, timezone)
    end = _data_end(data_end, kept_frame["created_at"], timezone)
    trends, flags = theme_trends(
        periods,
        membership_df,
        period=period,
        data_end=end,
        baseline_periods=baseline_periods,
        recent_periods=recent_periods,
        min_theme_size=min_theme_size,
        min_lift=min_lift,
        alpha=alpha,
    )
    n_periods = periods.nunique()
    if n_periods < baseline_periods + recent_periods:
        checks.append(
            Check(
                "trend baseline",
                "warn",
                f"{n_periods} {period}(s) of data; spikes and emerging themes need "
                f"{baseline_periods} baseline + {recent_periods} recent {period}(s): "
                "flags use what there is",
            )
        )

    counts_by_theme = np.asarray(member.sum(axis=0)).ravel().astype(int)
    rows = []
    for t in range(n_themes):
        in_theme = member[:, t].toarray().ravel().astype(bool)
        row = {
            "theme_id": theme_ids[t],
            "label": labels[t],
            "origin": "codebook" if t < n_cb else "discovered",
            "count": int(counts_by_theme[t]),
            "share": counts_by_theme[t] / n_kept if n_kept else np.nan,
            "sentiment_mean": float(sent[in_theme].mean()) if in_theme.any() else np.nan,
            "nps": np.nan,
            "nps_responses": 0,
            "nps_impact": np.nan,
            "keyphrases": phrases[t],
            "quotes": quotes[t],
        }
        if nps_frame is not None:
            nrow = nps_frame.iloc[t]
            row |= {
                "nps": nrow["nps"],
                "nps_responses": int(nrow["nps_responses"]),
                "nps_impact": nrow["nps_impact"],
            }
        frow = flags.iloc[t]
        row |= {
            k: frow[k]
            for k in (
                "emerging",
                "spike",
                "lift",
                "recent_count",
                "baseline_count",
                "trend_p_value",
            )
        }
        rows.append(row)
    themes_table = pd.DataFrame(rows, columns=THEME_COLUMNS)
    if len(themes_table):
        themes_table["emerging"] = themes_table["emerging"].astype(bool)
        themes_table["spike"] = themes_table["spike"].astype(bool)

    checks.append(_tiny_themes_check(themes_table, discovery, min_theme_size))

    # Per input item.
    theme_text = np.full(n_in, "", dtype=object)
    primary = np.full(n_in, None, dtype=object)
    for k, row_i in enumerate(kept_rows):
        if kept_themes[k]:
            theme_text[row_i] = ";".join(theme_ids[t] for t in kept_themes[k])
            primary[row_i] = theme_ids[kept_themes[k][0]]
    # duplicates carry their representative's themes (for downstream joins), not counted twice
    position = {feedback_id: i for i, feedback_id in enumerate(ids)}
    for row_i in np.flatnonzero(status == "duplicate"):
        rep = position[duplicate_of[row_i]]
        theme_text[row_i], primary[row_i] = theme_text[rep], primary[rep]
    language_all = np.full(n_in, None, dtype=object)
    language_all[kept_rows] = language
    sentiment_all = np.full(n_in, np.nan)
    sentiment_all[kept_rows] = sent
    items = _items_frame(
        frame, status, display, duplicate_of, theme_text, primary, language_all, sentiment_all
    )

    segments_table = _segments(kept_frame, membership_df, segments, checks)
    overview = pd.DataFrame(
        [
            {
                "items": n_in,
                "empty_dropped": n_empty,
                "exact_duplicates_collapsed": dups.exact_collapsed,
                "near_duplicates_collapsed": dups.near_collapsed,
                "analysed": n_kept,
                "non_english": int(non_en.sum()),
                "assigned": int((~unassigned).sum()),
                "unassigned": int(unassigned.sum()),
                "unassigned_share": unassigned_share,
                "codebook_themes": n_cb,
                "discovered_themes": n_disc,
                "discover_k": None if discovery is None else discovery.k_fitted,
                "engine": engine_obj.name,
                "sentiment_mean": float(sent.mean()) if n_kept else np.nan,
                "nps": nps_frame.attrs["overall_nps"] if nps_frame is not None else np.nan,
                "nps_responses": nps_frame.attrs["responses"] if nps_frame is not None else 0,
            }
        ]
    )
    checks.append(
        Check(
            "unassigned share",
            "warn" if unassigned_share > 0.5 else "pass",
            f"{unassigned_share:.0%} of {n_kept:,} analysed item(s) fit no theme",
        )
    )
    tables = {"themes": themes_table, "trends": trends, "overview": overview}
    if segments_table is not None:
        tables["segments"] = segments_table
    engine_detail = engine_obj.describe() if hasattr(engine_obj, "describe") else engine_obj.name
    result = FeedbackThemes(
        headline=_headline(themes_table, n_kept),
        bullets=[*_bullets(themes_table, overview.iloc[0]), f"Text engine: {engine_detail}."],
        key_numbers=_key_numbers(overview.iloc[0], themes_table),
        checks=checks,
        method=_method(
            engine_obj,
            themes_cb,
            discovery,
            params,
            period,
            baseline_periods,
            recent_periods,
            min_lift,
            alpha,
            redact,
        ),
        tables=tables,
        data_window=_window(frame["created_at"], timezone),
        items=items,
        unassigned_share=unassigned_share,
        engine=engine_obj.name,
        engine_detail=engine_detail,
        quote_pool=dict(zip(theme_ids, quote_pool, strict=True)),
    )
    return result


# --- Helpers -------------------------------------------------------------------------------------


@dataclass
class _Space:
    """Item and codebook-text vectors in one engine space, for the step-level helpers."""

    engine: Engine
    features: SparseFeatures
    items: np.ndarray
    theme_vectors: np.ndarray
    theme_of_vector: np.ndarray
    theme_features: SparseFeatures

    @classmethod
    def build(
        cls, texts: list[str], themes: list[CodebookTheme], engine: str | Engine, seed: int
    ) -> _Space:
        engine_obj, _ = resolve_engine(engine)
        cb_texts, cb_theme = [], []
        for t, theme in enumerate(themes):
            for text in theme.texts():
                cb_texts.append(analysis_text(clean_text(text)))
                cb_theme.append(t)
        features = SparseFeatures.build([tokens(t) for t in texts + cb_texts])
        vectors = engine_obj.embed(texts + cb_texts, features, len(texts), seed)
        n = len(texts)
        items_features = SparseFeatures(features.matrix[:n], features.chars[:n])
        theme_features = SparseFeatures(features.matrix[n:], features.chars[n:])
        return cls(
            engine_obj,
            items_features,
            vectors[:n],
            vectors[n:],
            np.asarray(cb_theme, dtype=np.int64),
            theme_features,
        )

    def codebook_sparse(self) -> dict[str, Any]:
        """The sparse rows `assign_codebook` gives its classifier, when the engine wants them."""
        if not getattr(self.engine, "codebook_sparse", False):
            return {}
        return {"item_sparse": self.features.matrix, "theme_sparse": self.theme_features.matrix}


def _check_parameters(
    discover: Any,
    period: str,
    baseline_periods: int,
    recent_periods: int,
    min_theme_size: int,
    quotes_per_theme: int,
    near: float,
) -> dict[str, Any]:
    problems = []
    if discover is None or discover is False:
        discover = 0
    if isinstance(discover, str):
        if discover.strip().lower() != "auto":
            problems.append(f"discover must be a whole number or 'auto', not {discover!r}")
        discover = "auto"
    elif isinstance(discover, bool) or not isinstance(discover, (int, np.integer)) or discover < 0:
        problems.append(
            f"discover must be a whole number of at least 0 or 'auto', not {discover!r}"
        )
    if period not in ("day", "week", "month"):
        problems.append(f"period must be day, week or month, not {period!r}")
    for name, value, low in (
        ("baseline_periods", baseline_periods, 1),
        ("recent_periods", recent_periods, 1),
        ("min_theme_size", min_theme_size, 1),
        ("quotes_per_theme", quotes_per_theme, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            problems.append(f"{name} must be a whole number of at least {low}, not {value!r}")
    if not 0 < near <= 1:
        problems.append(f"near_duplicate_threshold must be in (0, 1], not {near!r}")
    if problems:
        raise ParameterError(problems, source="feedback theming")
    return {"discover": discover if discover == "auto" else int(discover), "near": float(near)}


def _canonical(feedback: pd.DataFrame, segments: Sequence[str]) -> pd.DataFrame:
    """The frame with checked columns, UTC times, in time-then-id order."""
    if not isinstance(feedback, pd.DataFrame):
        raise DataContractError("feedback", "expected a table (pandas DataFrame)")
    for column in ("feedback_id", "created_at", "text"):
        if column not in feedback.columns:
            raise DataContractError("feedback", "missing required column", column=column)
    frame = feedback.copy()
    created = pd.to_datetime(frame["created_at"], utc=True, errors="coerce")
    bad = created.isna()
    if bad.any():
        raise DataContractError(
            "feedback",
            "unparseable or missing timestamps",
            column="created_at",
            rows=int(bad.sum()),
            example=frame.loc[bad, "created_at"].iloc[0],
        )
    frame["created_at"] = created
    frame["feedback_id"] = frame["feedback_id"].astype(str)
    frame["text"] = frame["text"].astype(object)
    return frame.sort_values(["created_at", "feedback_id"], kind="stable").reset_index(drop=True)


def _membership_matrix(lists: list[list[int]], n_columns: int) -> sparse.csr_matrix:
    rows = [i for i, ts in enumerate(lists) for _ in ts]
    cols = [t for ts in lists for t in ts]
    return sparse.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, cols)),
        shape=(len(lists), max(n_columns, 0)),
    )


def _members(theme_lists: list[list[int]], n_themes: int) -> list[np.ndarray]:
    out: list[list[int]] = [[] for _ in range(n_themes)]
    for i, ts in enumerate(theme_lists):
        for t in ts:
            out[t].append(i)
    return [np.asarray(m, dtype=np.int64) for m in out]


def _theme_centres(
    vectors: np.ndarray,
    theme_lists: list[list[int]],
    n_themes: int,
    discovery: Discovery | None,
    n_cb: int,
) -> np.ndarray:
    dims = vectors.shape[1] if vectors.ndim == 2 else 1
    centres = np.zeros((n_themes, dims))
    for t, members in enumerate(_members(theme_lists, n_themes)):
        if t >= n_cb and discovery is not None:
            centres[t] = discovery.centres[t - n_cb]
        elif len(members):
            mean = vectors[members].mean(axis=0)
            centres[t] = mean / max(np.linalg.norm(mean), 1e-12)
    return centres


def _label_from(phrases: list[str], fallback: str) -> str:
    return ", ".join(phrases) if phrases else fallback


def _tiny_themes_check(
    themes: pd.DataFrame, discovery: Discovery | None, min_theme_size: int
) -> Check:
    """Codebook themes with fewer items than `min_theme_size`, and discovered groups that
    were too small to keep (their items stay unassigned)."""
    tiny = themes[(themes["origin"] == "codebook") & (themes["count"] < min_theme_size)]
    dissolved = discovery.dissolved_small if discovery is not None else 0
    parts = []
    if len(tiny):
        names = ", ".join(f"{r.theme_id} ({r.count})" for r in tiny.itertuples())
        parts.append(f"codebook theme(s) with fewer than {min_theme_size} items: {names}")
    if dissolved:
        parts.append(
            f"{dissolved} discovered group(s) smaller than {min_theme_size} items left unassigned"
        )
    return Check(
        "tiny themes",
        "warn" if len(tiny) else "pass",
        "; ".join(parts) if parts else f"every theme has at least {min_theme_size} items",
    )


def _html_check(display: list[str]) -> Check:
    html_items = sum(1 for t in display if has_html(t))
    scripts = sum(1 for t in display if has_script(t))
    detail = (
        f"{html_items:,} item(s) contain HTML markup ({scripts:,} with <script>); markup is "
        "ignored for theming and quotes show it as plain text, escaped in the readout"
    )
    return Check("HTML in texts", "warn" if html_items else "pass", detail)


def _scores(frame: pd.DataFrame) -> tuple[pd.Series | None, Check | None]:
    if "score" not in frame.columns:
        return None, None
    values = pd.to_numeric(frame["score"], errors="coerce").astype(float)
    given = frame["score"].notna()
    bad = given & ~values.between(0, 10)
    values[bad] = np.nan
    if not values.notna().any():
        return None, Check("NPS scores", "warn", "no 0-10 scores: NPS not computed")
    status = "warn" if bad.any() else "pass"
    return values, Check(
        "NPS scores",
        status,
        f"{int(values.notna().sum()):,} analysed item(s) have a 0-10 score"
        + (f"; {int(bad.sum()):,} outside 0-10 or not numbers ignored" if bad.any() else ""),
    )


def _data_end(data_end: Any, created: pd.Series, timezone: str) -> pd.Timestamp:
    if data_end is None:
        end = created.max()
    else:
        end = pd.Timestamp(data_end)
        end = end.tz_localize("UTC") if end.tzinfo is None else end
    return end.tz_convert(timezone).tz_localize(None)


def _segments(
    kept: pd.DataFrame, membership: pd.DataFrame, segments: Sequence[str], checks: list[Check]
) -> pd.DataFrame | None:
    if not segments:
        return None
    missing = [s for s in segments if s not in kept.columns]
    if missing:
        checks.append(
            Check("segments", "warn", f"segment column(s) not in the data: {', '.join(missing)}")
        )
    rows = []
    for column in (s for s in segments if s in kept.columns):
        values = kept[column].astype("string").fillna("(missing)")
        for value, index in values.groupby(values, sort=True).groups.items():
            sub = membership.loc[index]
            n = len(sub)
            assigned = sub.any(axis=1).sum() if len(sub.columns) else 0
            for theme in membership.columns:
                rows.append(
                    {
                        "segment": column,
                        "value": value,
                        "theme_id": theme,
                        "items": n,
                        "count": int(sub[theme].sum()),
                        "share": sub[theme].sum() / n if n else np.nan,
                    }
                )
            rows.append(
                {
                    "segment": column,
                    "value": value,
                    "theme_id": UNASSIGNED,
                    "items": n,
                    "count": int(n - assigned),
                    "share": (n - assigned) / n if n else np.nan,
                }
            )
    return pd.DataFrame(rows, columns=["segment", "value", "theme_id", "items", "count", "share"])


def _window(created: pd.Series, timezone: str = "UTC") -> dict[str, str | None]:
    """First and last day of the feedback, in the analysis timezone."""
    if not len(created):
        return {"start": None, "end": None}
    local = created.dt.tz_convert(timezone)
    return {"start": local.min().date().isoformat(), "end": local.max().date().isoformat()}


def _headline(themes: pd.DataFrame, n: int) -> str:
    if not len(themes) or n == 0:
        return f"{n:,} feedback item(s) analysed; no theme found."
    top = themes.sort_values(["count", "theme_id"], ascending=[False, True]).iloc[0]
    emerging = themes[themes["emerging"]]
    text = (
        f"The largest theme is \u201c{top['label']}\u201d: {top['share']:.0%} of "
        f"{n:,} feedback items"
    )
    if len(emerging):
        e = emerging.sort_values("lift", ascending=False).iloc[0]
        text += f"; \u201c{e['label']}\u201d is emerging ({e['lift']:.1f}x its baseline share)"
    return text + "."


def _bullets(themes: pd.DataFrame, overview: pd.Series) -> list[str]:
    out = []
    if len(themes):
        top = themes.sort_values(["count", "theme_id"], ascending=[False, True]).head(3)
        out.append("Top themes: " + "; ".join(f"{r.label} {r.share:.0%}" for r in top.itertuples()))
        spikes = themes[themes["spike"]]
        if len(spikes):
            out.append("Spiking in the latest period: " + ", ".join(spikes["label"]))
        rated = themes.dropna(subset=["nps_impact"])
        if len(rated):
            worst = rated.sort_values("nps_impact").iloc[0]
            out.append(
                f"\u201c{worst['label']}\u201d moves overall NPS by "
                f"{worst['nps_impact']:+.1f} points (NPS of its respondents "
                f"{worst['nps']:.0f})"
            )
    out.append(
        f"{overview['unassigned_share']:.0%} of items fit no theme; "
        f"{overview['exact_duplicates_collapsed'] + overview['near_duplicates_collapsed']:,}"
        " duplicate(s) counted once"
    )
    return out


def _key_numbers(overview: pd.Series, themes: pd.DataFrame) -> list[KeyNumber]:
    out = [
        KeyNumber("Feedback items analysed", int(overview["analysed"]), "items"),
        KeyNumber("Themes", len(themes), "themes"),
        KeyNumber("Unassigned", float(overview["unassigned_share"]), "share"),
        KeyNumber("Emerging themes", int(themes["emerging"].sum()) if len(themes) else 0, "themes"),
    ]
    if overview["nps_responses"]:
        out.append(KeyNumber("NPS", round(float(overview["nps"])), "NPS"))
    return out


def _method(
    engine: Engine,
    codebook: list[CodebookTheme],
    discovery: Discovery | None,
    params: dict[str, Any],
    period: str,
    baseline: int,
    recent: int,
    min_lift: float,
    alpha: float,
    redacted: bool,
) -> list[str]:
    space = (
        "tf-idf of character 3-4-grams and stemmed words and two-word phrases, reduced by "
        "latent semantic analysis (truncated SVD)"
        if engine.name == "tfidf"
        else f"sentence embeddings ({getattr(engine, 'model_name', engine.name)}; token vectors "
        "averaged with inverse-document-frequency weights)"
    )
    out = [
        "Cleaning: links, @handles and e-mail signatures are removed; HTML is ignored for "
        "theming and shown as plain text in quotes; empty items are dropped.",
        "Duplicates: the same text (ignoring case and punctuation) or a near copy (character "
        f"n-gram cosine \u2265 {params['near']:.2f}) from the same customer counts once.",
        "Language: items whose words are mostly non-English function words are flagged and "
        "left unassigned.",
        f"Text representation: {space}; similarity is cosine.",
    ]
    if codebook:
        out.append(
            "Codebook themes: an item gets a theme when its similarity to the theme's examples "
            "stands out from the typical item's (robust z-score \u2265 "
            f"{params['codebook_z']:g}); a classifier trained on the examples"
            + (
                " (two averaged: one on the reduced vectors, one on the word and character tf-idf)"
                if getattr(engine, "codebook_sparse", False)
                else ""
            )
            + " orders the themes; an item may carry several themes."
        )
    if params["discover"] != 0:
        k = "chosen by silhouette" if params["discover"] == "auto" else "as requested"
        how = (
            "communities of the graph that joins each remaining item to its 15 most similar "
            "items (Leiden, seeded, resolution searched to give the number of themes)"
            if discovery is not None and discovery.method == "graph"
            else "spherical k-means (seeded, several starts) on the remaining items"
        )
        out.append(
            f"New themes: {how}, "
            f"number of themes {k}; items far from every theme centre and themes smaller than "
            "the minimum size stay unassigned. Labels are the phrases most specific to each "
            "theme (class-based tf-idf)."
        )
    out += [
        "Quotes: items nearest each theme's centre, never two near-identical ones"
        + ("; e-mail addresses, phone and card numbers are masked." if redacted else "."),
        "Sentiment: VADER compound score (-1 to +1) per item. NPS = % promoters (9-10) minus "
        "% detractors (0-6); a theme's NPS impact = overall NPS minus NPS without its items.",
        f"Trends per {period}: a spike is a count above what the theme's share over the previous "
        f"{baseline} {period}(s) predicts (one-sided Poisson test, p < {alpha} / number of "
        f"themes); a theme is emerging when its share over the last {recent} {period}(s) is at "
        f"least {min_lift:g}x its baseline share with enough items.",
        "Shares are of analysed items (after duplicates); an item with two themes counts in "
        "both, so shares can add up to more than 100%.",
    ]
    return out


def _items_frame(
    frame: pd.DataFrame,
    status: np.ndarray,
    display: list[str],
    duplicate_of: np.ndarray,
    theme_ids: np.ndarray,
    primary: np.ndarray,
    language: np.ndarray,
    sentiment_scores: np.ndarray,
) -> pd.DataFrame:
    """One row per input item, in canonical order: what happened to it and its themes."""
    return pd.DataFrame(
        {
            "feedback_id": frame["feedback_id"].astype(str).to_numpy(),
            "created_at": frame["created_at"].to_numpy(),
            "status": status,
            "duplicate_of": duplicate_of,
            "theme_ids": theme_ids,
            "primary_theme": primary,
            "language": language,
            "sentiment": sentiment_scores,
            "text": display,
        }
    )


def _empty_result(frame: pd.DataFrame, status: np.ndarray, checks: list[Check]) -> FeedbackThemes:
    n = len(frame)
    none = np.full(n, None, dtype=object)
    items = _items_frame(
        frame,
        status,
        [clean_text(t) for t in frame["text"].tolist()],
        none,
        np.full(n, "", dtype=object),
        none,
        none,
        np.full(n, np.nan),
    )
    return FeedbackThemes(
        headline="No feedback text to theme.",
        checks=checks,
        tables={"themes": pd.DataFrame(columns=THEME_COLUMNS), "trends": _NO_TRENDS.copy()},
        data_window=_window(frame["created_at"]),
        items=items,
    )
