"""The sample generator: determinism, table contracts, planted truth recoverable from raw data."""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats

from workbench import sample
from workbench.sample import generate_sample

SMALL_USERS = 800
LARGE_USERS = 4000
PARQUET_TABLES = ("accounts", "users", "events", "assignments", "feedback", "feedback_truth")
SIGNUP_START = pd.Timestamp("2026-03-02", tz="UTC")
SIGNUP_END = pd.Timestamp("2026-08-31", tz="UTC")
DATA_END = pd.Timestamp("2026-09-01", tz="UTC")
EXPOSURE_START = pd.Timestamp("2026-07-06", tz="UTC")
EXPOSURE_END = pd.Timestamp("2026-08-03", tz="UTC")
EMERGING_START = pd.Timestamp("2026-08-03", tz="UTC")
FOURTEEN_DAYS = pd.Timedelta(days=14)
UTC_MICROS = pa.timestamp("us", tz="UTC")
FEATURE_EVENTS = (
    "report_created",
    "dashboard_shared",
    "integration_connected",
    "alert_configured",
    "export_csv",
)

EXPECTED_SCHEMAS = {
    "accounts": pa.schema(
        [
            ("account_id", pa.string()),
            ("plan", pa.string()),
            ("industry", pa.string()),
            ("created_at", UTC_MICROS),
        ]
    ),
    "users": pa.schema(
        [
            ("user_id", pa.string()),
            ("account_id", pa.string()),
            ("signup_at", UTC_MICROS),
            ("plan", pa.string()),
            ("country", pa.string()),
            ("role", pa.string()),
        ]
    ),
    "events": pa.schema(
        [
            ("user_id", pa.string()),
            ("event", pa.string()),
            ("timestamp", UTC_MICROS),
            ("platform", pa.string()),
            ("revenue", pa.float64()),
        ]
    ),
    "assignments": pa.schema(
        [
            ("user_id", pa.string()),
            ("experiment", pa.string()),
            ("variant", pa.string()),
            ("assigned_at", UTC_MICROS),
            ("plan", pa.string()),
        ]
    ),
    "feedback": pa.schema(
        [
            ("feedback_id", pa.string()),
            ("created_at", UTC_MICROS),
            ("text", pa.string()),
            ("source", pa.string()),
            ("score", pa.int64()),
            ("user_id", pa.string()),
            ("account_id", pa.string()),
            ("plan", pa.string()),
        ]
    ),
    "feedback_truth": pa.schema(
        [
            ("feedback_id", pa.string()),
            ("themes", pa.list_(pa.string())),
            ("is_duplicate_of", pa.string()),
            ("near_duplicate_of", pa.string()),
            ("language", pa.string()),
            ("quirks", pa.list_(pa.string())),
        ]
    ),
}


def _generate(folder: Path, users: int, **options) -> Path:
    generate_sample(folder, users, **options)
    return folder


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _generate(tmp_path_factory.mktemp("small") / "sample", SMALL_USERS)


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _generate(tmp_path_factory.mktemp("large") / "sample", LARGE_USERS)


@pytest.fixture(scope="module")
def all_control(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("all_control") / "sample"
    return _generate(folder, LARGE_USERS, experiment_split=(1.0, 0.0))


@pytest.fixture(scope="module")
def all_treatment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("all_treatment") / "sample"
    return _generate(folder, LARGE_USERS, experiment_split=(0.0, 1.0))


def _read(folder: Path, table: str) -> pd.DataFrame:
    return pd.read_parquet(folder / f"{table}.parquet")


def _truth(folder: Path) -> dict:
    return json.loads((folder / "truth.json").read_text(encoding="utf-8"))


def _lookup(series: pd.Series, keys: pd.Series) -> pd.api.extensions.ExtensionArray:
    """Values of `series` for each key, aligned by position (keeps time zones)."""
    return series.loc[keys].array


def _content_digest(path: Path) -> str:
    """Hash of a Parquet table's values (not of the file's bytes)."""
    columns = pq.read_table(path).to_pydict()
    return hashlib.sha256(json.dumps(columns, default=str).encode()).hexdigest()


def _experiment_outcomes(folder: Path) -> pd.DataFrame:
    """Per assigned user: variant and the three metrics plus the covariate, from raw events."""
    assignments = _read(folder, "assignments").set_index("user_id")
    events = _read(folder, "events").merge(
        assignments[["assigned_at"]], left_on="user_id", right_index=True
    )
    after = (events.timestamp >= events.assigned_at) & (
        events.timestamp < events.assigned_at + FOURTEEN_DAYS
    )
    before = (events.timestamp >= events.assigned_at - FOURTEEN_DAYS) & (
        events.timestamp < events.assigned_at
    )

    def per_user(rows: pd.DataFrame, value: pd.Series | None = None) -> pd.Series:
        grouped = (
            rows.groupby("user_id").size()
            if value is None
            else value[rows.index].groupby(rows.user_id).sum()
        )
        return grouped.reindex(assignments.index, fill_value=0)

    return pd.DataFrame(
        {
            "variant": assignments.variant,
            "converted": per_user(events[after & (events.event == "report_created")]) > 0,
            "sessions": per_user(events[after & (events.event == "session_start")]),
            "pre_sessions": per_user(events[before & (events.event == "session_start")]),
            "revenue": per_user(events[after & (events.event == "invoice_paid")], events.revenue),
        }
    )


# --- Determinism and files ------------------------------------------------------------------------


def test_same_seed_gives_identical_files_and_contents(small: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    manifest = generate_sample(again, SMALL_USERS)
    for table in PARQUET_TABLES:
        path = f"{table}.parquet"
        assert _content_digest(again / path) == _content_digest(small / path), table
        assert (again / path).read_bytes() == (small / path).read_bytes(), table
    assert (again / "truth.json").read_text() == (small / "truth.json").read_text()
    assert manifest == json.loads((small / "manifest.json").read_text())


def test_another_seed_changes_every_table(small: Path, tmp_path: Path) -> None:
    other = _generate(tmp_path / "other", SMALL_USERS, seed=8)
    for table in PARQUET_TABLES:
        path = f"{table}.parquet"
        assert _content_digest(other / path) != _content_digest(small / path), table


def test_manifest_lists_every_file_with_its_row_count(small: Path) -> None:
    manifest = json.loads((small / "manifest.json").read_text())
    assert (manifest["seed"], manifest["users"]) == (7, SMALL_USERS)
    assert manifest["feedback"] == round(0.6 * SMALL_USERS)
    assert manifest["generator_version"]
    for table in PARQUET_TABLES:
        path = small / manifest["paths"][table]
        assert manifest["rows"][table] == pq.read_metadata(path).num_rows > 0
    assert (small / manifest["paths"]["truth"]).is_file()
    assert manifest["rows"]["users"] == SMALL_USERS


def test_existing_folder_keeps_foreign_files_and_no_staging_is_left(tmp_path: Path) -> None:
    out = tmp_path / "data"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "events.parquet").write_bytes(b"stale, not parquet")
    manifest = generate_sample(out, 50)
    assert (out / "notes.txt").read_text() == "mine"
    assert pq.read_metadata(out / "events.parquet").num_rows == manifest["rows"]["events"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_failed_generation_leaves_the_previous_dataset_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = _generate(tmp_path / "data", 50)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def broken(*args: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(sample, "_generate_feedback", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        generate_sample(out, 60, seed=3)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


@pytest.mark.parametrize(
    "arguments",
    [
        {"users": 0},
        {"users": 10, "feedback": -1},
        {"users": 10, "seed": -1},
        {"users": 10, "experiment_split": (0.7, 0.7)},
        {"users": 2.5},
    ],
)
def test_invalid_arguments_are_refused(tmp_path: Path, arguments: dict) -> None:
    with pytest.raises(ValueError):
        generate_sample(tmp_path / "out", **arguments)
    assert not (tmp_path / "out").exists()


def test_tiny_and_feedback_free_datasets_keep_their_schemas(tmp_path: Path) -> None:
    manifest = generate_sample(tmp_path / "tiny", 1, feedback=0)
    assert manifest["rows"]["users"] == 1 and manifest["rows"]["feedback"] == 0
    for table, schema in EXPECTED_SCHEMAS.items():
        assert pq.read_schema(tmp_path / "tiny" / f"{table}.parquet").remove_metadata() == schema
    assert generate_sample(tmp_path / "some", 200, feedback=120)["rows"]["feedback"] == 120


# --- Contracts ------------------------------------------------------------------------------------


@pytest.mark.parametrize("table", PARQUET_TABLES)
def test_table_schema_is_the_public_contract(small: Path, table: str) -> None:
    assert pq.read_schema(small / f"{table}.parquet").remove_metadata() == EXPECTED_SCHEMAS[table]


def test_feedback_score_reads_back_as_nullable_integer(small: Path) -> None:
    feedback = _read(small, "feedback")
    assert feedback.score.dtype == "Int64"
    nps = feedback.source == "nps"
    assert feedback.score[nps].notna().all() and feedback.score[~nps].isna().all()
    assert feedback.score[nps].between(0, 10).all()
    assert set(feedback.source) == {"nps", "support", "feature_request"}


def test_ids_are_unique_and_well_formed(small: Path) -> None:
    for table, column, pattern in (
        ("accounts", "account_id", r"a\d{5}"),
        ("users", "user_id", r"u\d{7}"),
        ("feedback", "feedback_id", r"f\d{6}"),
    ):
        ids = _read(small, table)[column]
        assert ids.is_unique, table
        assert ids.str.fullmatch(pattern).all(), table
    assert _read(small, "assignments").user_id.is_unique


def test_every_reference_points_at_an_existing_row(small: Path) -> None:
    accounts = _read(small, "accounts").set_index("account_id")
    users = _read(small, "users").set_index("user_id")
    assert users.account_id.isin(accounts.index).all()
    assert (users.plan == accounts.plan[users.account_id].to_numpy()).all()
    assert set(accounts.plan) == {"free", "pro", "enterprise"}
    assert accounts.index.isin(users.account_id).all()  # no account without a user
    for table in ("events", "assignments", "feedback"):
        assert _read(small, table).user_id.isin(users.index).all(), table
    for table in ("assignments", "feedback"):
        rows = _read(small, table)
        assert (rows.plan.to_numpy() == _lookup(users.plan, rows.user_id)).all(), table
    feedback = _read(small, "feedback")
    assert (feedback.account_id.to_numpy() == _lookup(users.account_id, feedback.user_id)).all()
    assert (_read(small, "feedback_truth").feedback_id == feedback.feedback_id).all()


def test_timestamps_stay_within_the_calendar(small: Path) -> None:
    users = _read(small, "users").set_index("user_id")
    accounts = _read(small, "accounts").set_index("account_id")
    events = _read(small, "events")
    assert users.signup_at.between(SIGNUP_START, SIGNUP_END, inclusive="left").all()
    first_signup = users.groupby("account_id").signup_at.min()
    assert (accounts.created_at == first_signup[accounts.index]).all()
    assert (events.timestamp < DATA_END).all()
    assert events.timestamp.max() >= DATA_END - pd.Timedelta(days=1)
    early = events.timestamp < _lookup(users.signup_at, events.user_id)
    planted = _truth(small)["data_quality"]["events_before_signup"]
    assert early.sum() == planted["events"] >= 1
    gap = _lookup(users.signup_at, events.user_id[early]) - events.timestamp[early].array
    assert (gap <= pd.Timedelta(hours=6)).all()
    assert (events.timestamp >= SIGNUP_START - pd.Timedelta(hours=6)).all()
    feedback = _read(small, "feedback")
    assert (feedback.created_at >= _lookup(users.signup_at, feedback.user_id)).all()
    assert (feedback.created_at < DATA_END).all()
    assert feedback.created_at.is_monotonic_increasing


def test_events_vocabulary_platforms_and_revenue(small: Path) -> None:
    events = _read(small, "events")
    users = _read(small, "users").set_index("user_id")
    expected = {"session_start", "page_view", "search", "invoice_paid", *FEATURE_EVENTS}
    assert set(events.event) == expected
    assert set(events.platform) == {"web", "ios", "android"}
    billing = events.event == "invoice_paid"
    assert events.revenue[billing].gt(0).all() and events.revenue[~billing].isna().all()
    assert set(users.plan[events.user_id[billing]]) == {"pro", "enterprise"}
    assert events.sort_values(["user_id", "timestamp"], kind="stable").index.equals(events.index)


# --- Planted activity and adoption ----------------------------------------------------------------


def test_activity_volume_and_retention_curve(large: Path) -> None:
    users = _read(large, "users").set_index("user_id")
    events = _read(large, "events")
    assert 40 <= len(events) / len(users) <= 65
    activity = events[events.event != "invoice_paid"]
    signup_day = users.signup_at.dt.floor("D")
    week = (
        (activity.timestamp.dt.floor("D") - _lookup(signup_day, activity.user_id)).dt.days // 7
    ).rename("week")
    active = pd.DataFrame({"user_id": activity.user_id, "week": week}).drop_duplicates()
    days_left = (DATA_END - pd.Timedelta(days=1) - signup_day).dt.days
    retention = {}
    for n in range(1, 13):
        cohort = days_left.index[days_left >= 7 * n + 6]
        returned = active.user_id[(active.week == n) & active.user_id.isin(cohort)].nunique()
        retention[n] = returned / len(cohort)
    assert 0.55 <= retention[1] <= 0.70
    assert 0.22 <= retention[8] <= 0.38
    assert retention[1] > retention[4] > retention[8] - 0.02
    realised = _truth(large)["retention"]["realised"]["all"]
    assert [round(realised[n], 12) for n in retention] == [round(r, 12) for r in retention.values()]
    paid = _truth(large)["retention"]["realised"]
    assert paid["enterprise"][8] > paid["free"][8] and paid["pro"][8] > paid["free"][8]


def test_planted_adoption_rates_are_recovered_from_events(large: Path) -> None:
    users = _read(large, "users").set_index("user_id")
    events = _read(large, "events")
    adoption = _truth(large)["adoption"]
    assert adoption["window_days"] == 14
    observable = users[users.signup_at + FOURTEEN_DAYS <= DATA_END]
    z_scores = []
    for feature in adoption["features"].values():
        first_use = events[events.event == feature["event"]].groupby("user_id").timestamp.min()
        delay = first_use.reindex(observable.index) - observable.signup_at
        adopted = delay <= FOURTEEN_DAYS
        for plan, planted in feature["rate_by_plan"].items():
            mine = observable.plan == plan
            n, rate = int(mine.sum()), float(adopted[mine].mean())
            z_scores.append((rate - planted) / math.sqrt(planted * (1 - planted) / n))
            assert abs(z_scores[-1]) <= 4, (feature["event"], plan, rate, planted)
            realised = feature["realised_by_plan"][plan]
            assert (realised["users"], realised["adopters"]) == (n, int(adopted[mine].sum()))
        assert feature["rate_by_plan"]["enterprise"] > feature["rate_by_plan"]["free"]
        median = (delay[adopted] / pd.Timedelta(days=1)).median()
        # Median first-use delay among 14-day adopters: the truncated exponential's median.
        scale = feature["median_days"] / math.log(2)
        expected = -scale * math.log(1 - 0.5 * (1 - math.exp(-14 / scale)))
        assert abs(median - expected) <= 0.35 * expected + 0.3, feature["event"]
    # No systematic bias: the mean of 15 independent z-scores has a standard error of 0.26.
    assert abs(np.mean(z_scores)) <= 1.0


def test_adopters_who_stay_active_keep_using_the_feature(large: Path) -> None:
    events = _read(large, "events")
    for feature in ("report_created", "dashboard_shared"):
        first_use = events[events.event == feature].groupby("user_id").timestamp.min()
        later = events.merge(first_use.rename("first_use"), left_on="user_id", right_index=True)
        later = later[later.timestamp > later.first_use]
        sessions = later[later.event == "session_start"].groupby("user_id").size()
        still_active = sessions.index[sessions >= 10]
        used_again = later[later.event == feature].user_id.unique()
        assert len(still_active) >= 100
        assert still_active.isin(used_again).mean() > 0.6, feature


# --- Experiment -----------------------------------------------------------------------------------


def test_everyone_active_in_the_window_is_assigned_at_their_first_activity(large: Path) -> None:
    events = _read(large, "events")
    assignments = _read(large, "assignments").set_index("user_id")
    in_window = events[
        (events.event != "invoice_paid")
        & (events.timestamp >= EXPOSURE_START)
        & (events.timestamp < EXPOSURE_END)
    ]
    first_activity = in_window.groupby("user_id").timestamp.min()
    assert set(first_activity.index) == set(assignments.index)
    assert (assignments.assigned_at == first_activity[assignments.index]).all()
    assert set(assignments.experiment) == {"onboarding_checklist"}
    users = _read(large, "users").set_index("user_id")
    new_users = users.signup_at[assignments.index] >= EXPOSURE_START
    assert 0.2 < new_users.mean() < 0.6  # both existing and new users take part


def test_split_matches_the_planned_split(large: Path) -> None:
    experiment = _truth(large)["experiment"]
    assert experiment["planned_split"] == {"control": 0.5, "treatment": 0.5}
    assert experiment["control"] == "control" and not experiment["sample_ratio_mismatch_planted"]
    counts = _read(large, "assignments").variant.value_counts()
    assert set(counts.index) == {"control", "treatment"}
    assert stats.chisquare(counts.to_numpy()).pvalue > 0.001
    assert experiment["assigned_users"] == {"total": int(counts.sum()), **counts.to_dict()}


def test_planted_sample_ratio_mismatch(large: Path, tmp_path: Path) -> None:
    skewed = _generate(tmp_path / "skewed", LARGE_USERS, experiment_split=(0.6, 0.4))
    experiment = _truth(skewed)["experiment"]
    assert experiment["planned_split"] == {"control": 0.5, "treatment": 0.5}
    assert experiment["assignment_probability"] == {"control": 0.6, "treatment": 0.4}
    assert experiment["sample_ratio_mismatch_planted"]
    assignments = _read(skewed, "assignments")
    counts = assignments.variant.value_counts()
    assert stats.chisquare(counts.to_numpy()).pvalue < 0.001
    # Only the labels move: the same users are assigned at the same moments.
    balanced = _read(large, "assignments")
    pd.testing.assert_frame_equal(
        assignments[["user_id", "assigned_at"]], balanced[["user_id", "assigned_at"]]
    )


def test_true_effects_are_the_difference_between_the_two_arms_for_everyone(
    all_control: Path, all_treatment: Path
) -> None:
    control, treatment = _experiment_outcomes(all_control), _experiment_outcomes(all_treatment)
    assert (control.variant == "control").all() and (treatment.variant == "treatment").all()
    assert control.index.equals(treatment.index)
    metrics = _truth(all_control)["experiment"]["metrics"]
    assert metrics == _truth(all_treatment)["experiment"]["metrics"]

    conversion = metrics["report_conversion"]
    assert control.converted.mean() == pytest.approx(conversion["control_value"], abs=1e-12)
    assert treatment.converted.mean() == pytest.approx(conversion["treatment_value"], abs=1e-12)
    assert 0.18 <= conversion["control_value"] <= 0.35
    assert 0.015 <= conversion["effect_abs"] <= 0.045
    assert (treatment.converted >= control.converted).all()

    sessions = metrics["sessions"]
    lift = treatment.sessions.mean() / control.sessions.mean() - 1
    assert lift == pytest.approx(sessions["effect_rel"], abs=1e-12)
    assert 0.035 <= lift <= 0.065
    assert (treatment.sessions >= control.sessions).all()

    assert metrics["revenue"]["effect_abs"] == 0
    pd.testing.assert_series_equal(control.revenue, treatment.revenue)
    assert control.revenue.mean() == pytest.approx(metrics["revenue"]["control_value"])
    pd.testing.assert_series_equal(control.pre_sessions, treatment.pre_sessions)


def test_each_arm_shows_its_own_potential_outcome(
    large: Path, all_control: Path, all_treatment: Path
) -> None:
    observed = _experiment_outcomes(large)
    control, treatment = _experiment_outcomes(all_control), _experiment_outcomes(all_treatment)
    treated = observed.variant == "treatment"
    for metric in ("converted", "sessions", "revenue", "pre_sessions"):
        expected = control[metric].where(~treated, treatment[metric])
        pd.testing.assert_series_equal(observed[metric], expected, check_names=False)
    lift = observed.sessions[treated].mean() / observed.sessions[~treated].mean() - 1
    assert lift > -0.2  # the +5% is small next to the noise of ~1,800 users; no reversal


def test_pre_exposure_sessions_predict_post_exposure_sessions(large: Path) -> None:
    outcomes = _experiment_outcomes(large)
    rho = outcomes.pre_sessions.corr(outcomes.sessions)
    assert 0.4 <= rho <= 0.75
    covariate = _truth(large)["experiment"]["covariate"]
    assert covariate["correlation_with_sessions"] == pytest.approx(rho, abs=0.05)


# --- Feedback -------------------------------------------------------------------------------------


def _feedback_with_truth(folder: Path) -> pd.DataFrame:
    return _read(folder, "feedback").merge(_read(folder, "feedback_truth"), on="feedback_id")


def test_feedback_themes_come_from_the_codebook(large: Path) -> None:
    feedback = _feedback_with_truth(large)
    codebook = _truth(large)["feedback"]["themes"]
    assert len(codebook) >= 8
    for entry in codebook.values():
        assert entry["label"] and entry["description"] and len(entry["examples"]) >= 5
    mentioned = {theme for themes in feedback.themes for theme in themes}
    assert mentioned == set(codebook)
    assert 0.05 <= (feedback.themes.map(len) == 2).mean() <= 0.2
    counts = _truth(large)["feedback"]["counts"]["by_theme"]
    assert counts == {
        name: int(feedback.themes.map(lambda t, n=name: n in t).sum()) for name in codebook
    }


def test_emerging_theme_appears_only_after_its_start(large: Path) -> None:
    feedback = _feedback_with_truth(large)
    emerging = _truth(large)["feedback"]["emerging_theme"]
    assert emerging["name"] == "data_sync"
    assert pd.Timestamp(emerging["start"]) == EMERGING_START
    mentions = feedback.themes.map(lambda themes: "data_sync" in themes)
    late = feedback.created_at >= EMERGING_START
    assert not mentions[~late].any()
    assert mentions[late].mean() >= 0.15
    assert 0.15 <= late.mean() <= 0.45  # the last four weeks of 26, with a growing base
    sync_words = feedback.text[mentions & (feedback.language == "en")].str.contains(
        "sync|refresh", case=False
    )
    assert sync_words.mean() > 0.9


def test_nps_scores_follow_the_theme(large: Path) -> None:
    feedback = _feedback_with_truth(large)
    nps = feedback[(feedback.source == "nps") & (feedback.themes.map(len) > 0)]
    main_theme = nps.themes.map(lambda themes: themes[0])
    mean = nps.score.astype(float).groupby(main_theme).mean()
    assert mean["praise"] >= 8
    assert mean["performance"] <= 5.5 and mean["data_sync"] <= 4.5 and mean["pricing"] <= 6
    assert mean["praise"] - mean["performance"] >= 3


def test_planted_feedback_quirks_are_present_and_recorded(small: Path) -> None:
    feedback = _feedback_with_truth(small)
    quirks = _truth(small)["data_quality"]["feedback_quirks"]
    texts = feedback.text

    blank = texts.str.strip() == ""
    assert blank.sum() == quirks["empty"] >= 1
    assert (feedback.themes[blank].map(len) == 0).all()

    copies = feedback[feedback.is_duplicate_of.notna()]
    assert len(copies) == quirks["exact_duplicate"] >= 0.01 * len(feedback)
    originals = feedback.set_index("feedback_id").loc[copies.is_duplicate_of]
    assert (copies.text.to_numpy() == originals.text.to_numpy()).all()
    assert (copies.user_id.to_numpy() == originals.user_id.to_numpy()).all()
    assert (copies.created_at.array >= originals.created_at.array).all()
    assert originals.is_duplicate_of.isna().all()
    undeclared = feedback[feedback.is_duplicate_of.isna() & ~blank].duplicated(["user_id", "text"])
    assert not undeclared.any()

    edits = feedback[feedback.near_duplicate_of.notna()]
    assert len(edits) == quirks["near_duplicate"] >= 1
    sources = feedback.set_index("feedback_id").text[edits.near_duplicate_of]
    for edited, source in zip(edits.text, sources, strict=True):
        assert edited != source and source in edited

    assert texts.str.contains('<script>alert("x")</script>', regex=False).any()
    assert texts.str.contains(r"<b>\S+</b>").any()
    assert texts.str.contains(r"https?://\S+").any()
    assert texts.str.contains(r"[\w.]+@[\w-]+\.\w+").any()
    assert texts.str.contains(r"@[a-z_.-]+\b(?!\.)", regex=True).any()
    assert texts.str.contains(r"\+?\(?\d[\d ()-]{7,}\d").any()
    assert texts.str.contains("Sent from my iPhone").any()
    assert texts.str.len().max() >= 1000
    tagged = {
        "very_long": lambda text: len(text) >= 1000,
        "url": lambda text: "://" in text,
        "html_script": lambda text: "<script>" in text,
        "html_bold": lambda text: "<b>" in text,
        "signature": lambda text: "\n\n" in text,
        "email": lambda text: re.search(r"\w@\w", text) is not None,
    }
    for tag, shows in tagged.items():
        items = feedback.text[feedback.quirks.map(lambda q, t=tag: t in q)]
        assert len(items) == quirks[tag] >= 1 and items.map(shows).all(), tag
    foreign = feedback[feedback.language.isin(["es", "de", "fr"])]
    assert set(foreign.language) == {"es", "de", "fr"}
    assert not foreign.text.str.contains(" the ").any()
    assert len(feedback[feedback.language == "en"]) > 0.9 * len(feedback)


def test_feedback_default_size_and_truth_counts(large: Path) -> None:
    feedback = _feedback_with_truth(large)
    counts = _truth(large)["feedback"]["counts"]
    assert len(feedback) == counts["items"] == round(0.6 * LARGE_USERS)
    assert counts["by_source"] == feedback.source.value_counts().to_dict()
    shares = feedback.source.value_counts(normalize=True)
    assert np.all(shares > 0.1)
    assert counts["without_theme"] == int((feedback.themes.map(len) == 0).sum())
