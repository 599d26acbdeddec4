"""The cohort adoption readout: parameters, summary numbers, charts, explorer, planted truth."""

from __future__ import annotations

import json
import re

import ibis
import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from tests.conftest import REPO
from workbench.cohort_readout import CohortExplorer, cohort_readout, cohort_settings
from workbench.contracts import conform
from workbench.errors import DataContractError, ParameterError
from workbench.parameters import check_parameter_file, validate_parameters
from workbench.readout import Readout

pytestmark = pytest.mark.filterwarnings("ignore:fetch_arrow_table:DeprecationWarning")


def frames(n_pro: int = 200, n_free: int = 300) -> dict[str, pd.DataFrame]:
    """Two weekly cohorts; pro users return in week 1 far more often than free users.

    Cohort of 3/2: every user starts on Monday 3/2; pro i returns in week 1 when i % 10 < 7
    (70%), free when i % 10 < 4 (40%); everyone with i % 10 < 5 (pro) or < 2 (free) creates a
    report on day 1. Cohort of 3/9: ten free users, nobody returns. The last event is on 3/26,
    so the week of 3/23 is in progress and later weeks are not observable.
    """
    users, events = [], []
    for i in range(n_pro + n_free):
        plan = "pro" if i < n_pro else "free"
        uid = f"{plan}{i}"
        users.append((uid, "2026-03-02 08:00", plan))
        events.append((uid, "session", "2026-03-02 09:00"))
        if (i % 10) < (7 if plan == "pro" else 4):
            events.append((uid, "session", "2026-03-10 09:00"))
        if (i % 10) < (5 if plan == "pro" else 2):
            events.append((uid, "report_created", "2026-03-03 09:00"))
    for i in range(10):
        users.append((f"late{i}", "2026-03-09 08:00", "free"))
        events.append((f"late{i}", "session", "2026-03-09 09:00"))
    events.append(("pro0", "session", "2026-03-26 09:00"))
    u = pd.DataFrame(users, columns=["user_id", "signup_at", "plan"])
    u["signup_at"] = pd.to_datetime(u["signup_at"], utc=True)
    e = pd.DataFrame(events, columns=["user_id", "event", "timestamp"])
    e["timestamp"] = pd.to_datetime(e["timestamp"], utc=True)
    return {"users": u, "events": e}


def parameters(data: dict[str, pd.DataFrame], **overrides: object):
    raw = {
        "title": "Cohorts",
        "sources": dict(data),
        "segments": ["plan"],
        "periods": 4,
        "features": {"reports": "report_created"},
        "adoption_window_days": 7,
        "compare_at": [1],
    } | overrides
    return validate_parameters("cohort_adoption", raw, root=REPO)


def run(data: dict[str, pd.DataFrame], **overrides: object):
    params = parameters(data, **overrides)
    tables = {name: ibis.memtable(frame) for name, frame in data.items()}
    return cohort_readout(tables, params), params, tables


# --- parameters ----------------------------------------------------------------------------------


def test_sample_parameter_file_is_valid():
    params = check_parameter_file(REPO / "parameters/cohort_adoption/sample.yaml")
    assert params.analysis == "cohort_adoption"
    assert params.period == "week" and params.segments == ["plan"]
    assert len(params.features) == 5


def test_bad_parameters_are_listed_together():
    with pytest.raises(ParameterError) as info:
        parameters(
            frames(2, 2),
            period="fortnight",
            week_start="someday",
            retention="ever",
            unit="team",
            periods=0,
            features={"reports": []},
            activity="",
            min_events=0,
            compare_at=[9],
            colour="red",
        )
    text = "\n".join(info.value.problems)
    for key in (
        "period:",
        "week_start:",
        "retention:",
        "unit:",
        "periods:",
        "feature(s) ['reports']",
        "activity",
        "min_events:",
        "colour: unknown key",
    ):
        assert key in text, key
    with pytest.raises(ParameterError, match="compare_at: 9 is outside"):
        parameters(frames(2, 2), compare_at=[9])
    with pytest.raises(ParameterError, match="either as_of or window.end"):
        parameters(frames(2, 2), as_of="2026-03-20", window={"end": "2026-03-20"})
    with pytest.raises(ParameterError, match="sources: missing required table"):
        validate_parameters(
            "cohort_adoption", {"title": "x", "sources": {"users": frames()["users"]}}, root=REPO
        )


def test_window_and_as_of_become_the_cohort_settings():
    params = parameters(frames(2, 2), window={"start": "2026-03-04", "end": "2026-03-20"})
    settings = cohort_settings(params)
    assert str(settings["start"]) == "2026-03-04" and str(settings["as_of"]) == "2026-03-20"
    assert settings["segments"] == ("plan",) and settings["week_start"] == "monday"
    timed = cohort_settings(parameters(frames(2, 2), as_of="2026-03-20T12:00:00"))
    assert pd.Timestamp(timed["as_of"]) == pd.Timestamp("2026-03-20 12:00")
    day = cohort_settings(parameters(frames(2, 2), as_of="2026-03-20"))
    assert type(day["as_of"]).__name__ == "date"  # a whole local day, not midnight


# --- the readout's numbers -----------------------------------------------------------------------


def test_summary_is_written_from_the_numbers():
    result, _, _ = run(frames())
    retention = result.tables["retention"]
    first = retention[retention["cohort"] == pd.Timestamp("2026-03-02")].set_index("period")
    # week 1 of 3/2: 140 pro + 120 free of 500 back; week 2: nobody; week 3: pro0 (in progress)
    assert first.loc[0, "cohort_size"] == 500 and first.loc[1, "retained"] == 260
    assert first.loc[3, "state"] == "in_progress" and first.loc[3, "retained"] == 1
    assert first.loc[4, "state"] == "not_observable" and pd.isna(first.loc[4, "rate"])
    # the average at week 1 pools both complete cohorts: 260 of 510
    curve = result.tables["average_retention"].set_index("period")
    assert (curve.loc[1, "n_cohorts"], curve.loc[1, "retained"]) == (2, 260)
    numbers = {k.name: k for k in result.key_numbers}
    assert numbers["Users in cohorts"].value == 510
    week1 = numbers["Week 1 retention"]
    assert week1.value == pytest.approx(260 / 510)
    low, high = proportion_confint(260, 510, method="wilson")
    assert (week1.ci_low, week1.ci_high) == pytest.approx((low, high))
    assert "51% were active in week 1" in result.headline
    assert "510 users" in result.headline and "2 weekly cohorts" in result.headline
    # adoption: 100 pro + 60 free of 500 eligible (the 3/9 cohort's window ended too)
    adopt = numbers["Adopt reports within 7 days"]
    assert adopt.value == pytest.approx(160 / 510)
    assert any("reports 31% (median 1.0 days)" in b for b in result.bullets)


def test_segment_sentence_carries_the_difference_and_its_interval():
    result, _, _ = run(frames())
    sentence = next(b for b in result.bullets if "retain better" in b)
    # pro 140 / 200 vs free 120 / 310 (the late free cohort's week 1 counts: complete, 0 back)
    low, high = confint_proportions_2indep(140, 200, 120, 310, method="newcomb", compare="diff")
    diff = 140 / 200 - 120 / 310
    assert sentence.startswith("Pro users retain better at week 1: 70% vs 39%")
    assert (
        f"difference {diff * 100:.0f} points (95% CI {low * 100:.0f}–{high * 100:.0f}" in sentence
    )
    assert "adjusted p < 0.001" in sentence
    table = result.segment_table()
    assert list(table.columns) == [
        "segment",
        "metric",
        "groups",
        "rates (95% CI)",
        "difference (95% CI)",
        "adjusted p",
    ]
    week1 = table[table["metric"] == "retention: week 1 (on)"].iloc[0]
    wl, wh = proportion_confint(120, 310, method="wilson")
    assert week1["rates (95% CI)"].startswith(f"38.7% ({wl:.0%}–{wh:.0%}) vs 70.0%")
    ranked = table[table["metric"] == "time to adopt: reports"].iloc[0]
    assert ranked["difference (95% CI)"].startswith("log-rank χ² ")


def test_no_significant_difference_is_said_plainly():
    data = frames(20, 20)
    users = data["users"]
    users["plan"] = np.where(np.arange(len(users)) % 2 == 0, "pro", "free")  # plan says nothing
    result, _, _ = run(data)
    sentence = next(b for b in result.bullets if "plan" in b and "significantly" in b)
    assert sentence.startswith("No plan retains significantly differently")


def test_results_have_the_documented_keys_and_states():
    result, params, _ = run(frames())
    readout = Readout("cohort_adoption", "t", "T", result, {}, [])
    results = readout.summary_json()["results"]
    expected = {
        "retention": ["cohort", "period", "cohort_size", "retained", "rate", "state"],
        "adoption": ["feature", "cohort", "eligible", "adopted", "rate", "median_days"],
        "lifecycle": ["period", "new", "returning", "resurrecting", "dormant"],
        "stickiness": ["week", "avg_dau", "wau", "mau", "dau_mau", "wau_mau", "complete"],
        "segments": ["p_value", "p_adjusted", "diff_ci_low", "diff_ci_high", "significant"],
    }
    for key, columns in expected.items():
        assert results[key], key
        assert set(columns) <= set(results[key][0]), key
    readme = (REPO / "README.md").read_text()
    section = readme.split("### cohort_adoption", 1)[1].split("\n## ", 1)[0]
    for key in results:
        assert f"`{key}`" in section, key
    hidden = [r for r in results["retention"] if r["state"] == "not_observable"]
    assert hidden and all(r["retained"] is None and r["rate"] is None for r in hidden)
    json.dumps(results)  # JSON-safe


def test_heatmap_draws_cell_states_distinctly():
    result, _, _ = run(frames())
    spec = result.retention_heatmap().to_dict()
    rows = next(iter(spec["datasets"].values()))
    labels = {(r["cohort"], r["period"]): (r["label"], r["cell"]) for r in rows}
    assert labels[("2026-03-02", 3)] == ("0%…", "in progress (so far)")
    assert labels[("2026-03-02", 4)] == ("·", "not observable yet")
    assert labels[("2026-03-02", 2)] == ("0%", "complete")  # a true zero is a zero
    text = json.dumps(spec)
    assert "not observable yet" in text and "opacity" in text


def test_every_chart_is_a_valid_spec():
    result, _, _ = run(frames(), as_of="2026-04-30")  # a month of data: complete MAU windows
    for name in (
        "average_curve_chart",
        "cohort_curves_chart",
        "segment_curves_chart",
        "adoption_chart",
        "adoption_by_cohort_chart",
        "time_to_adopt_chart",
        "breadth_chart",
        "stickiness_chart",
        "active_days_chart",
        "lifecycle_chart",
    ):
        chart = getattr(result, name)()
        assert chart is not None, name
        assert chart.to_dict()  # a valid Vega-Lite spec
    counts = result.average_curve_chart().to_dict()
    assert "n_cohorts" in json.dumps(counts["layer"][1]["encoding"]["text"])


def test_every_segment_column_gets_its_curves():
    data = frames(20, 20)
    data["users"]["region"] = np.where(np.arange(len(data["users"])) % 3 == 0, "EU", "<b>US</b>")
    result, _, _ = run(data, segments=["plan", "region"])
    both = result.segment_curves_chart().to_dict()
    assert [json.dumps(c).count("Average retention by") for c in both["vconcat"]] == [1, 1]
    region = result.segment_curves_chart("region").to_dict()
    rows = next(iter(region["datasets"].values()))
    assert {r["value"] for r in rows} == {"EU", "<b>US</b>"}  # escaped by the chart renderer
    assert set(result.tables["segments"]["segment"]) == {"plan", "region"}


def test_same_inputs_give_the_same_readout():
    first, _, _ = run(frames(30, 30), segments=["plan"])
    again, _, _ = run(frames(30, 30), segments=["plan"])
    assert first.results_json() == again.results_json()
    assert (first.headline, first.bullets) == (again.headline, again.bullets)


def test_many_daily_cohorts_draw_the_latest_and_keep_all_in_results():
    days = pd.date_range("2026-03-02 08:00", periods=70, freq="D", tz="UTC")
    users = pd.DataFrame({"user_id": [f"u{i}" for i in range(70)], "signup_at": days})
    events = pd.DataFrame(
        {"user_id": users["user_id"], "event": "session", "timestamp": days + pd.Timedelta("1h")}
    )
    result, _, _ = run({"users": users, "events": events}, period="day", segments=[], features={})
    assert result.tables["retention"]["cohort"].nunique() == 70
    spec = result.retention_heatmap().to_dict()
    rows = next(iter(spec["datasets"].values()))
    drawn = sorted({r["cohort"] for r in rows})
    assert len(drawn) == 60 and drawn[-1] == "2026-05-10"
    assert "latest 60 of 70 cohorts" in json.dumps(spec)
    assert "latest 60 of 70 cohorts" in json.dumps(result.cohort_curves_chart().to_dict())


def test_adoption_section_is_a_note_without_features():
    with_features, _, _ = run(frames(20, 20))
    assert "<h3>Feature adoption</h3>" in with_features.adoption_heading().to_html()
    table = with_features.adoption_summary_table().to_html()
    assert "<th>feature</th>" in table and '<td class="">reports</td>' in table
    without, _, _ = run(frames(20, 20), features={})
    note = without.adoption_heading().to_html()
    assert "no features are configured" in note and "<h3>" not in note
    assert without.adoption_summary_table() is None
    assert without.adoption_chart() is None and without.breadth_chart() is None


# --- bad input through the readout ----------------------------------------------------------------


def test_feature_that_never_occurs_is_flagged():
    result, _, _ = run(frames(20, 20), features={"reports": "report_created", "ghost": "nope"})
    checks = {c.name: c for c in result.checks}
    assert checks["feature 'ghost'"].status == "warn"
    assert "never occur" in checks["feature 'ghost'"].detail
    summary = result.tables["adoption_summary"].set_index("feature")
    assert summary.loc["ghost", "adopted"] == 0 and summary.loc["ghost", "rate"] == 0
    assert result.status == "warning"


def test_timestamps_without_timezone_are_read_as_utc_and_noted():
    data = frames(20, 20)
    naive = {name: frame.copy() for name, frame in data.items()}
    naive["users"]["signup_at"] = naive["users"]["signup_at"].dt.tz_localize(None)
    naive["events"]["timestamp"] = naive["events"]["timestamp"].dt.tz_localize(None)
    conformed, notes = {}, []
    for name, frame in naive.items():
        table, found = conform(ibis.memtable(frame), name)
        conformed[name], notes = table, notes + found
    assert {n.name for n in notes} == {"users: signup_at timezone", "events: timestamp timezone"}
    result = cohort_readout(conformed, parameters(data))
    expected, _, _ = run(data)
    pd.testing.assert_frame_equal(result.tables["retention"], expected.tables["retention"])
    # without the contract step the engine refuses to guess the zone
    with pytest.raises(DataContractError, match="no timezone"):
        cohort_readout({n: ibis.memtable(f) for n, f in naive.items()}, parameters(data))


def test_empty_window_gives_a_readout_that_says_so():
    result, _, _ = run(frames(5, 5), window={"end": "2026-02-01"})
    assert result.headline == "No users joined in the window, so there is no cohort to read."
    checks = {c.name: c.status for c in result.checks}
    assert checks["cohorts in window"] == "fail"
    assert result.tables["retention"].empty
    for name in ("retention_heatmap", "adoption_chart", "stickiness_chart"):
        getattr(result, name)()  # draws (or returns None) without failing


def test_one_user_cohort_is_read_with_a_tiny_cohort_warning():
    data = frames(1, 0)
    data["events"] = data["events"][data["events"]["user_id"] == "pro0"]
    data["users"] = data["users"][data["users"]["user_id"] == "pro0"]
    result, _, _ = run(data, segments=[], as_of="2026-03-29")
    assert {c.name: c.status for c in result.checks}["tiny cohorts"] == "warn"
    assert result.headline.startswith("Of 1 user who signed up in 1 weekly cohort (2026-03-02)")


# --- the explorer -------------------------------------------------------------------------------


def test_explorer_switches_period_mode_feature_and_segment():
    data = frames(20, 20)
    params = parameters(data)
    tables = {name: ibis.memtable(frame) for name, frame in data.items()}
    explorer = CohortExplorer(tables, params)
    choices = explorer.choices()
    assert choices["period"][0] == "week" and set(choices["period"]) == {"day", "week", "month"}
    assert choices["retention"] == ["on", "on_or_after"]
    assert choices["feature"] == ["reports"] and choices["segment"] == ["plan"]
    weekly = explorer.view("week", "on", "reports", "plan").to_dict()
    daily = explorer.view("day", "on_or_after", "reports", "plan").to_dict()
    assert len(weekly["vconcat"]) == 3
    assert "Daily retention by cohort ('on or after')" in json.dumps(daily["vconcat"][0])
    assert "Weekly retention by cohort ('on')" in json.dumps(weekly["vconcat"][0])
    assert set(explorer._seen) == {("week", "on"), ("day", "on_or_after")}


# --- planted truth --------------------------------------------------------------------------------


@pytest.mark.slow
def test_planted_adoption_rates_are_recovered_within_their_intervals():
    truth_file = REPO / "data/sample/truth.json"
    if not truth_file.exists():
        pytest.skip("sample data missing: run `make sample`")
    truth = json.loads(truth_file.read_text())["adoption"]
    params = check_parameter_file(REPO / "parameters/cohort_adoption/sample.yaml")
    assert params.adoption_window_days == truth["window_days"]
    con = ibis.duckdb.connect()
    tables = {
        "users": con.read_parquet(REPO / "data/sample/users.parquet"),
        "events": con.read_parquet(REPO / "data/sample/events.parquet"),
    }
    result = cohort_readout(tables, params)
    by_plan = result.tables["segments"]
    overall = result.tables["adoption_summary"].set_index("feature")
    assert set(overall.index) == set(truth["features"])
    checked = 0
    for name, feature in truth["features"].items():
        assert params.features[name] == feature["event"]
        rows = by_plan[(by_plan["metric"] == "adoption") & (by_plan["detail"] == name)]
        seen = {}
        for side in ("a", "b"):
            for _, r in rows.iterrows():
                seen[r[f"group_{side}"]] = (
                    r[f"n_{side}"],
                    r[f"x_{side}"],
                    r[f"ci_low_{side}"],
                    r[f"ci_high_{side}"],
                )
        for plan, planted in feature["rate_by_plan"].items():
            n, x, low, high = seen[plan]
            realised = feature["realised_by_plan"][plan]
            # same definition as the generator's tally: identical counts
            assert (n, x) == (realised["users"], realised["adopters"]), (name, plan)
            # the planted population rate lies inside the readout's 95% interval
            assert low <= planted <= high, (name, plan, low, planted, high)
            checked += 1
    assert checked == 15
    assert re.search(
        r"reports is the most adopted feature \(\d+% within 14 days\)", result.headline
    )
