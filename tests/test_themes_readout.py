"""The feedback theming readout: its parameters, the analysis over real sources, the theme cards,
charts and browser, and the sample readout recovering the planted themes."""

from __future__ import annotations

import json

import altair as alt
import ipywidgets
import pandas as pd
import pytest
import yaml

from tests.conftest import REPO
from tests.test_themes import CODEBOOK, make_feedback
from workbench.errors import ParameterError
from workbench.interactive import explore
from workbench.notebook import NotebookRun
from workbench.parameters import check_parameter_file, validate_parameters
from workbench.readout import Section
from workbench.themes import feedback_theming, theme_feedback
from workbench.themes_readout import ThemeCards, sparkline


def write_workspace(tmp_path, frame: pd.DataFrame, **overrides) -> tuple:
    """A workspace with the feedback as Parquet and a valid theming parameter file."""
    (tmp_path / "data").mkdir()
    frame.to_parquet(tmp_path / "data" / "feedback.parquet")
    folder = tmp_path / "parameters" / "feedback_theming"
    folder.mkdir(parents=True)
    params = {
        "title": "Tiny theming",
        "sources": {"feedback": "data/feedback.parquet"},
        "codebook": CODEBOOK_ENTRIES,
        "discover": 0,
        "engine": "tfidf",
        "min_theme_size": 3,
        "segments": ["plan"],
    } | overrides
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    return path, params


CODEBOOK_ENTRIES = [
    {
        "name": t["id"],
        "label": t["label"],
        "description": t["description"],
        "examples": t["examples"],
    }
    for t in CODEBOOK
]


# --- Parameters -----------------------------------------------------------------------------------


def test_parameters_list_every_problem_with_its_key(tmp_path):
    path, _ = write_workspace(
        tmp_path,
        make_feedback(5),
        discover="lots",
        engine="bert",
        period="year",
        baseline_periods=0,
        codebook=[{"name": "pricing"}, {"name": "pricing", "examples": ["x"]}, {"label": "x"}],
    )
    with pytest.raises(ParameterError) as error:
        check_parameter_file(path)
    text = "\n".join(error.value.problems)
    for key in ("discover", "engine", "period", "baseline_periods", "codebook.0", "codebook.2"):
        assert key in text, (key, text)
    assert "needs a description, examples or keywords" in text
    assert "name: required key is missing" in text


def test_codebook_from_a_separate_file(tmp_path):
    path, _ = write_workspace(tmp_path, make_feedback(5), codebook="codebooks/known.yaml")
    with pytest.raises(ParameterError, match="no codebook file"):
        check_parameter_file(path)
    (tmp_path / "codebooks").mkdir()
    known = tmp_path / "codebooks" / "known.yaml"
    known.write_text(yaml.safe_dump({"codebook": CODEBOOK_ENTRIES}), encoding="utf-8")
    params = check_parameter_file(path)
    assert [t["name"] for t in params.codebook_themes()] == ["pricing", "export", "login"]
    twice = [{"name": "a", "keywords": ["x"]}, {"name": "A", "keywords": ["y"]}]
    known.write_text(yaml.safe_dump({"codebook": twice}), "utf-8")
    with pytest.raises(ParameterError, match="appear more than once"):
        check_parameter_file(path)
    known.write_text("themes: [a, b]", encoding="utf-8")
    with pytest.raises(ParameterError, match="codebook file 'codebooks/known.yaml' must hold"):
        check_parameter_file(path)


def test_sample_parameter_file_is_valid_and_names_only_some_planted_themes():
    params = check_parameter_file(REPO / "parameters/feedback_theming/sample.yaml")
    truth = json.loads((REPO / "data/sample/truth.json").read_text())["feedback"]
    named = {t["name"] for t in params.codebook_themes()}
    planted = set(truth["themes"])
    assert named < planted and truth["emerging_theme"]["name"] not in named
    assert params.engine == "tfidf"  # the main job runs on the base install


# --- The analysis over real sources ---------------------------------------------------------------


def test_feedback_theming_reads_the_window_and_segments_from_a_parquet_source(tmp_path):
    frame = make_feedback(20)
    path, _ = write_workspace(tmp_path, frame, window={"start": "2026-03-09", "end": "2026-05-03"})
    params = check_parameter_file(path)
    run = NotebookRun({"_workbench": {"root": str(tmp_path)}})
    tables = run.load_tables(params)
    result = feedback_theming(tables, params)
    inside = frame[
        (frame["created_at"] >= pd.Timestamp("2026-03-09", tz="UTC"))
        & (frame["created_at"] < pd.Timestamp("2026-05-04", tz="UTC"))
    ]
    assert len(result.items) == len(inside)
    assert result.data_window["start"] >= "2026-03-09"
    assert result.data_window["end"] <= "2026-05-03"
    # the window end closes the last period: the week of 2026-04-27 is complete
    trends = result.tables["trends"]
    assert trends["complete"].all()
    seg = result.tables["segments"]
    assert set(seg["segment"]) == {"plan"} and set(seg["value"]) == {"free", "pro"}
    counts = seg[seg["theme_id"] == "pricing"].set_index("value")["count"]
    items = result.items[result.items["status"] == "analysed"]
    in_theme = items[items["theme_ids"].str.split(";").map(lambda ts: "pricing" in ts)]
    plans = inside.set_index("feedback_id").loc[in_theme["feedback_id"], "plan"]
    assert counts.to_dict() == plans.value_counts().to_dict()


def test_summary_results_keys_and_themes_csv_beside_the_readout(tmp_path):
    frame = make_feedback(15)
    result = theme_feedback(frame, codebook=CODEBOOK, discover=0, min_theme_size=3)
    results = result.results_json()
    assert isinstance(results["unassigned_share"], float)
    record = results["themes"][0]
    for key in ("theme_id", "label", "origin", "count", "share", "sentiment_mean", "nps"):
        assert key in record
    for key in ("nps_impact", "emerging", "spike", "quotes"):
        assert key in record
    run = NotebookRun({"_workbench": {"run_dir": str(tmp_path)}})
    written = result.publish_themes_csv(run)
    assert written == tmp_path / "themes.csv"
    csv = pd.read_csv(written, keep_default_na=False)
    assert len(csv) == len(frame)
    assert set(csv["primary_theme"]) <= {"pricing", "export", "login", ""}
    assert result.publish_themes_csv(NotebookRun({})) is None


# --- Cards, charts, browser -----------------------------------------------------------------------


def test_theme_cards_escape_text_and_put_emerging_themes_first():
    themes = pd.DataFrame(
        [
            _theme_row("big", "Big <b>theme</b>", 90, emerging=False, lift=1.0),
            _theme_row("new", "New theme", 10, emerging=True, lift=4.0),
        ]
    )
    trends = pd.DataFrame({"theme_id": ["big", "big", "new", "new"], "share": [0.5, 0.6, 0.0, 0.2]})
    cards = ThemeCards(themes, trends)
    assert list(cards.ordered()["theme_id"]) == ["new", "big"]
    html = cards.to_html()
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Big &lt;b&gt;theme&lt;/b&gt;" in html
    assert "emerging 4.0x" in html
    assert html.index("New theme") < html.index("Big &lt;b&gt;")
    assert html.count("<svg") == 2


def test_sparkline_scales_to_the_largest_value():
    svg = sparkline([0.0, 0.5, 1.0], width=100, height=20)
    points = svg.split('points="')[1].split('"')[0].split()
    ys = [float(p.split(",")[1]) for p in points]
    assert ys[0] == pytest.approx(18.0) and ys[2] == pytest.approx(2.0) and ys[1] == 10.0
    assert sparkline([]) == ""


def test_charts_and_theme_browser():
    frame = make_feedback(20)
    result = theme_feedback(
        frame,
        codebook=CODEBOOK,
        discover=0,
        min_theme_size=3,
        segments=["plan"],
        quotes_per_theme=1,
    )
    for chart in (result.volume_chart(), result.themes_chart(), result.segment_view()):
        spec = chart.to_dict()
        assert spec["data"] or spec.get("datasets")
    choices = result.browser_choices()
    assert set(choices["theme"]) == {"pricing", "export", "login"}
    assert choices["segment"] == ["plan"]
    parts = result.theme_detail("pricing", "plan")
    detail = "".join(p.to_html() for p in parts if isinstance(p, Section))
    assert "Pricing" in detail and "free" in detail and "Quotes nearest the centre" in detail
    trend = next(p for p in parts if isinstance(p, alt.Chart)).to_dict()
    assert trend["mark"]["type"] == "bar"
    pool, shown = result.quote_pool["pricing"], result.tables["themes"]["quotes"].iloc[0]
    assert len(shown) == 1 and len(pool) > 1 and pool[:1] == shown
    no_segments = theme_feedback(frame, codebook=CODEBOOK, discover=0, min_theme_size=3)
    assert "No segments" in no_segments.segment_view().to_html()
    assert no_segments.browser_choices()["segment"] == [None]
    scheduled = NotebookRun({"_workbench": {"run_dir": "x"}})
    assert explore(result.browse_theme, run=scheduled, **choices) is None


def test_theme_browser_has_a_theme_and_a_segment_control(monkeypatch):
    monkeypatch.delenv("WORKBENCH_SCHEDULED", raising=False)
    frame = make_feedback(15)
    result = theme_feedback(
        frame, codebook=CODEBOOK, discover=0, min_theme_size=3, segments=["plan"]
    )
    shown = []
    monkeypatch.setattr(result, "theme_detail", lambda t, s: shown.append((t, s)) or [])
    panel = explore(result.browse_theme, **result.browser_choices())
    assert isinstance(panel, ipywidgets.interactive)
    assert [w.description for w in panel.kwargs_widgets] == ["Theme", "Segment"]
    panel.kwargs_widgets[0].value = "login"
    assert shown[-1] == ("login", "plan")


def test_validated_notebook_defaults_match_the_sample_parameter_file():
    nb = json.loads((REPO / "notebooks/feedback_theming.ipynb").read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    namespace: dict = {}
    exec("".join(cell["source"]), namespace)
    defaults = {k: v for k, v in namespace.items() if not k.startswith("__")}
    notebook = validate_parameters("feedback_theming", defaults, root=REPO)
    sample = check_parameter_file(REPO / "parameters/feedback_theming/sample.yaml")
    assert notebook.model_dump(exclude={"title"}) == sample.model_dump(exclude={"title"})
    assert all(not c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")


def _theme_row(theme_id: str, label: str, count: int, *, emerging: bool, lift: float) -> dict:
    return {
        "theme_id": theme_id,
        "label": label,
        "origin": "discovered",
        "count": count,
        "share": count / 100,
        "sentiment_mean": 0.1,
        "nps": -20.0,
        "nps_impact": -1.5,
        "emerging": emerging,
        "spike": False,
        "lift": lift,
        "quotes": ["<script>alert(1)</script>", "fine"],
    }


# --- The sample readout ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_readout():
    """The sample parameter file's analysis on the sample data (as `make readouts` runs it)."""
    params = check_parameter_file(REPO / "parameters/feedback_theming/sample.yaml")
    run = NotebookRun({"_workbench": {"root": str(REPO)}})
    return feedback_theming(run.load_tables(params), params)


def test_sample_readout_recovers_codebook_and_discovered_planted_themes(sample_readout):
    truth = pd.read_parquet(REPO / "data/sample/feedback_truth.parquet")
    items = sample_readout.items.merge(truth, on="feedback_id")
    themes = sample_readout.tables["themes"]
    assert set(themes["origin"]) == {"codebook", "discovered"}
    analysed = items[(items["status"] == "analysed") & (items["themes"].map(len) > 0)]
    # codebook themes: items given a codebook theme are about it
    for theme in themes[themes["origin"] == "codebook"]["theme_id"]:
        got = analysed[analysed["primary_theme"] == theme]
        assert (got["themes"].map(lambda t, th=theme: th in t)).mean() >= 0.85, theme
    # every planted theme not in the codebook is the main truth of some discovered theme
    named = set(themes.loc[themes["origin"] == "codebook", "theme_id"])
    planted = set(json.loads((REPO / "data/sample/truth.json").read_text())["feedback"]["themes"])
    recovered = set()
    for theme in themes[themes["origin"] == "discovered"]["theme_id"]:
        got = analysed[analysed["primary_theme"] == theme]
        main = got["themes"].map(lambda t: t[0]).value_counts(normalize=True)
        if len(main) and main.iloc[0] >= 0.7:
            recovered.add(main.index[0])
    assert planted - named <= recovered, planted - named - recovered


def test_sample_readout_flags_the_planted_late_theme_as_emerging(sample_readout):
    truth = pd.read_parquet(REPO / "data/sample/feedback_truth.parquet")
    late = json.loads((REPO / "data/sample/truth.json").read_text())["feedback"]
    late = late["emerging_theme"]["name"]
    themes = sample_readout.tables["themes"]
    emerging = themes[themes["emerging"]]
    assert len(emerging) >= 1
    items = sample_readout.items.merge(truth, on="feedback_id")
    for theme in emerging["theme_id"]:
        got = items[items["primary_theme"] == theme]
        assert got["themes"].map(lambda t: late in t).mean() >= 0.8, theme
    others = themes[~themes["emerging"]]
    for theme in others["theme_id"]:
        got = items[items["primary_theme"] == theme]
        assert got["themes"].map(lambda t: late in t).mean() < 0.5, theme
    first = sample_readout.cards().ordered().iloc[0]
    assert first["emerging"]


# --- Bad input through a real run -----------------------------------------------------------------


@pytest.mark.slow
def test_hostile_feedback_gives_a_warning_readout_with_clear_checks(tmp_path):
    import shutil

    from workbench.runner import run_parameter_file

    frame = make_feedback(8)
    hostile = [
        "",
        "   ",
        "https://example.com/only-a-link",
        'The export <script>alert("owned")</script> breaks <b>again</b>',
        "La exportación no funciona y los informes son muy lentos para nosotros",
        "Die Anmeldung funktioniert nicht und das ist sehr ärgerlich für uns",
        "export " * 3000,
        "Call me on +44 20 7946 0958 or mail jane.doe@example.com, pricing is too expensive",
    ]
    extra = pd.DataFrame(
        {
            "feedback_id": [f"h{i}" for i in range(len(hostile))],
            "created_at": pd.Timestamp("2026-04-01", tz="UTC"),
            "text": hostile,
        }
    )
    codebook = CODEBOOK_ENTRIES + [
        {"name": "quantum", "description": "quantum teleportation of spreadsheets"}
    ]
    path, _ = write_workspace(
        tmp_path,
        pd.concat([frame, extra], ignore_index=True),
        codebook=codebook,
        discover=40,
        min_theme_size=5,
    )
    shutil.copytree(REPO / "notebooks", tmp_path / "notebooks")
    outcome = run_parameter_file(path, tmp_path / "reports")
    assert outcome.status == "warning", outcome.error
    run_dir = tmp_path / "reports" / outcome.analysis / outcome.name
    run_dir = next(run_dir.iterdir())
    summary = json.loads((run_dir / "summary.json").read_text())
    checks = {c["name"]: c for c in summary["checks"]}
    assert checks["empty texts"]["status"] == "warn" and "3 of" in checks["empty texts"]["detail"]
    assert checks["non-English texts"]["status"] == "warn"
    assert checks["very long texts"]["status"] == "warn"
    assert checks["HTML in texts"]["status"] == "warn"
    assert "quantum" in checks["codebook themes matched"]["detail"]
    assert checks["themes requested"]["status"] == "warn"
    html = (run_dir / "readout.html").read_text()
    assert "<script>alert(" not in html and "jane.doe@example.com" not in html
    csv = pd.read_csv(run_dir / "themes.csv", keep_default_na=False)
    assert len(csv) == len(frame) + len(hostile)
    assert set(csv.loc[csv["feedback_id"].isin(["h0", "h1", "h2"]), "status"]) == {"empty"}
