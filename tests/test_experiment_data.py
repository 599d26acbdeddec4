"""Experiment data in the engine: per-arm sufficient statistics against a pandas reference."""

from __future__ import annotations

import ibis
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from workbench.errors import WorkbenchError
from workbench.experiment_data import (
    ExperimentDataError,
    MetricDefinition,
    MetricDefinitionError,
    daily_stats,
    experiment_stats,
    exposures,
    per_user_values,
    segment_stats,
)
from workbench.experiment_stats import compare_to_control

START = pd.Timestamp("2026-07-06", tz="UTC")
DAY = pd.Timedelta(days=1)
METRICS = [
    MetricDefinition("report_conversion", "conversion", ("report_created",), covariate_days=14),
    MetricDefinition(
        "sessions", "mean", "session_start", window_days=7, covariate_days=7, winsorize=0.9
    ),
    MetricDefinition("revenue", "mean", "invoice_paid", value="revenue", winsorize=0.95),
    MetricDefinition(
        "revenue_per_session",
        "ratio",
        ("invoice_paid",),
        value="revenue",
        denominator_events=("session_start", "page_view"),
        window_days=10,
    ),
    MetricDefinition(
        "any_activity", "conversion", ("session_start", "page_view"), window_days=None
    ),
]
SUMS = ["n", "sum_y", "sum_y2", "sum_x", "sum_x2", "sum_xy", "sum_d", "sum_d2", "sum_yd"]


def make_data(seed: int = 5, users: int = 400) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Assignments and events with the awkward cases a real export has."""
    rng = np.random.default_rng(seed)
    ids = np.array([f"u{i:04d}" for i in range(users)])
    exposed = START + pd.to_timedelta(rng.integers(0, 12 * 24 * 60, users), unit="min")
    assignments = pd.DataFrame(
        {
            "user_id": ids,
            "experiment": "checklist",
            "variant": rng.choice(["control", "treatment", "wide"], users, p=[0.4, 0.4, 0.2]),
            "assigned_at": exposed,
            "plan": rng.choice(["free", "pro", "team", "enterprise", None], users),
        }
    )
    extra = pd.concat(
        [
            # re-exposed later to the same variant: first exposure counts
            assignments.iloc[:10].assign(assigned_at=lambda f: f.assigned_at + 2 * DAY),
            # assigned to a second variant: excluded and counted
            assignments.iloc[10:17].assign(
                variant=lambda f: np.where(f.variant == "control", "treatment", "control"),
                assigned_at=lambda f: f.assigned_at + pd.Timedelta(hours=3),
            ),
            # another experiment: ignored
            assignments.iloc[:50].assign(experiment="other", variant="control"),
        ]
    )
    assignments = pd.concat([assignments, extra], ignore_index=True)

    n = users * 25
    who = rng.integers(0, users - 20, n)  # the last 20 users have no events at all
    offset = pd.to_timedelta(rng.integers(-20 * 24 * 60, 30 * 24 * 60, n), unit="min")
    events = pd.DataFrame(
        {
            "user_id": ids[who],
            "event": rng.choice(
                ["session_start", "page_view", "report_created", "invoice_paid"],
                n,
                p=[0.45, 0.3, 0.15, 0.1],
            ),
            "timestamp": exposed[who] + offset,
            "revenue": rng.lognormal(3, 1, n),
            "platform": rng.choice(["web", "ios"], n),
        }
    )
    events.loc[rng.random(n) < 0.05, "revenue"] = np.nan
    # boundaries: exactly at exposure (in), exactly at the window end (out), just before (pre)
    edge = pd.DataFrame(
        {
            "user_id": ids[[0, 1, 2, 3]],
            "event": ["session_start", "session_start", "report_created", "session_start"],
            "timestamp": [
                exposed[0],
                exposed[1] + 7 * DAY,
                exposed[2] - pd.Timedelta(microseconds=1),
                exposed[3] + 7 * DAY - pd.Timedelta(microseconds=1),
            ],
            "revenue": np.nan,
            "platform": "web",
        }
    )
    return assignments, pd.concat([events, edge], ignore_index=True)


def reference_per_user(
    assignments: pd.DataFrame,
    events: pd.DataFrame,
    metrics: list[MetricDefinition],
    *,
    cutoff: pd.Timestamp | None = None,
    caps: dict | None = None,
    segment: str | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Per-user values computed in pandas, as of `cutoff` (exposures and events before it)."""
    a = assignments[assignments["experiment"] == "checklist"]
    if cutoff is not None:
        a = a[a["assigned_at"] < cutoff]
    first = a.sort_values("assigned_at").groupby("user_id").first()
    users = a.groupby("user_id").agg(
        variants=("variant", "nunique"),
        variant=("variant", "min"),
        exposed_at=("assigned_at", "min"),
    )
    if segment:
        users["segment"] = first[segment].fillna("(missing)")
    users = users[users["variants"] == 1].drop(columns="variants")
    e = events if cutoff is None else events[events["timestamp"] < cutoff]
    e = e.merge(users[["exposed_at"]], left_on="user_id", right_index=True)
    out = users.copy()
    for m in metrics:
        post = e["timestamp"] >= e["exposed_at"]
        if m.window_days is not None:
            post &= e["timestamp"] < e["exposed_at"] + m.window_days * DAY

        def per_user(mask: pd.Series, names: tuple, prop: str | None) -> pd.Series:
            chosen = e[mask & e["event"].isin(names)]
            amount = chosen[prop].fillna(0.0) if prop else pd.Series(1.0, index=chosen.index)
            return amount.groupby(chosen["user_id"]).sum().reindex(users.index, fill_value=0.0)

        y = per_user(post, m.events, m.value)
        out[f"{m.name}_y"] = (y > 0).astype(float) if m.type == "conversion" else y
        if m.type == "ratio":
            out[f"{m.name}_d"] = per_user(post, m.denominator_events, m.denominator_value)
        if m.covariate_days:
            pre = (e["timestamp"] < e["exposed_at"]) & (
                e["timestamp"] >= e["exposed_at"] - m.covariate_days * DAY
            )
            x = per_user(pre, m.events, m.value)
            out[f"{m.name}_x"] = (x > 0).astype(float) if m.type == "conversion" else x
    if caps is None:
        caps = {}
        for m in metrics:
            if m.winsorize:
                caps[m.name] = {"value": out[f"{m.name}_y"].quantile(m.winsorize)}
                if m.covariate_days:
                    caps[m.name]["covariate"] = out[f"{m.name}_x"].quantile(m.winsorize)
    for name, cap in caps.items():
        out[f"{name}_y"] = out[f"{name}_y"].clip(upper=cap["value"])
        if "covariate" in cap:
            out[f"{name}_x"] = out[f"{name}_x"].clip(upper=cap["covariate"])
    return out, caps


def reference_sums(per_user: pd.DataFrame, metrics: list, keys: list[str]) -> pd.DataFrame:
    """Sufficient statistics of the pandas per-user values, one row per metric × keys."""
    rows = []
    for m in metrics:
        y = per_user[f"{m.name}_y"]
        cols = {"y": y, "y2": y * y}
        if f"{m.name}_x" in per_user:
            x = per_user[f"{m.name}_x"]
            cols |= {"x": x, "x2": x * x, "xy": x * y}
        if f"{m.name}_d" in per_user:
            d = per_user[f"{m.name}_d"]
            cols |= {"d": d, "d2": d * d, "yd": y * d}
        frame = pd.DataFrame({f"sum_{k}": v for k, v in cols.items()}).assign(n=1)
        grouped = frame.groupby([per_user[k] for k in keys]).sum().reset_index()
        rows.append(grouped.assign(metric=m.name))
    return pd.concat(rows, ignore_index=True)


def assert_sums_match(engine: pd.DataFrame, reference: pd.DataFrame, keys: list[str]) -> None:
    index = ["metric", *keys]
    left = engine.set_index(index).sort_index()
    right = reference.set_index(index).sort_index()
    assert left.index.equals(right.index)
    for column in SUMS:
        if column in right:
            np.testing.assert_allclose(
                left[column].to_numpy(float), right[column].to_numpy(float), rtol=1e-9, atol=1e-9
            )
        elif column in left:
            assert left[column].isna().all()


@pytest.fixture(scope="module")
def data() -> dict:
    assignments, events = make_data()
    return {
        "pandas": (assignments, events),
        "tables": (ibis.memtable(assignments), ibis.memtable(events)),
    }


@pytest.fixture(scope="module")
def result(data: dict):
    a, e = data["tables"]
    return experiment_stats(a, e, "checklist", METRICS)


def test_sufficient_statistics_match_pandas_per_user_values(data: dict, result) -> None:
    reference, caps = reference_per_user(*data["pandas"], METRICS)
    assert_sums_match(result.stats, reference_sums(reference, METRICS, ["variant"]), ["variant"])
    assert set(result.caps) == {"sessions", "revenue"}
    for name, cap in caps.items():
        for part, value in cap.items():
            assert result.caps[name][part] == pytest.approx(value, rel=1e-12)
    assert list(result.stats["metric"].unique()) == [m.name for m in METRICS]
    assert result.stats.groupby("metric")["metric_type"].first().to_dict() == {
        m.name: m.type for m in METRICS
    }


def test_exposure_quality_counts(data: dict, result) -> None:
    assignments, events = data["pandas"]
    reference, _ = reference_per_user(assignments, events, METRICS)
    assert result.multi_variant_users == 7
    counts = reference.groupby("variant").size()
    assert result.arms.set_index("variant")["users"].to_dict() == counts.to_dict()
    # users with no events in the joined window (the longest attribution window)
    assert result.users_without_events >= 20
    silent = reference.index[~reference.index.isin(events["user_id"])]
    assert len(silent) >= 17  # the 20 users without any event, minus those assigned twice
    a, _ = data["tables"]
    first = exposures(a, "checklist").execute().set_index("user_id")["exposed_at"]
    pd.testing.assert_series_equal(
        first.sort_index(), reference["exposed_at"].sort_index(), check_names=False
    )
    assert result.first_exposure == reference["exposed_at"].min()
    split = {"control": 0.4, "treatment": 0.4, "wide": 0.2}
    chi2, p = result.srm(split)
    expected = stats.chisquare(counts[list(split)], counts.sum() * np.array(list(split.values())))
    np.testing.assert_allclose([chi2, p], [expected.statistic, expected.pvalue])
    with pytest.raises(ExperimentDataError, match="no planned share"):
        result.srm({"control": 0.5, "treatment": 0.5})


def test_per_user_values_stay_an_engine_expression(data: dict) -> None:
    a, e = data["tables"]
    expression = per_user_values(a, e, "checklist", METRICS)
    assert isinstance(expression, ibis.Table)
    sql = ibis.to_sql(expression)
    assert sql.count("GROUP BY") == 2  # assignments per user, then events per user


def test_pipeline_matches_scipy_on_raw_per_user_values(data: dict, result) -> None:
    reference, _ = reference_per_user(*data["pandas"], METRICS)
    results = compare_to_control(result.stats, cuped=False)
    r = results[(results.metric == "revenue") & (results.variant == "treatment")].iloc[0]
    y = reference["revenue_y"]
    ref = stats.ttest_ind(
        y[reference.variant == "treatment"], y[reference.variant == "control"], equal_var=False
    )
    np.testing.assert_allclose([r.statistic, r.df, r.p_value], [ref.statistic, ref.df, ref.pvalue])


def test_daily_statistics_are_what_a_readout_saw_at_the_end_of_each_day(data: dict, result) -> None:
    a, e = data["tables"]
    daily = daily_stats(a, e, "checklist", METRICS, caps=result.caps)
    assert daily["day"].min() == 0 and daily["date"].iloc[0] == START.date()
    for day in (0, 6, 16):
        cutoff = START + (day + 1) * DAY
        reference, _ = reference_per_user(*data["pandas"], METRICS, cutoff=cutoff, caps=result.caps)
        expected = reference_sums(reference, METRICS, ["variant"])
        engine = daily[daily["day"] == day].drop(columns=["day", "date"])
        assert_sums_match(engine, expected, ["variant"])
    last = daily[daily["day"] == daily["day"].max()].drop(columns=["day", "date"])
    assert_sums_match(last, result.stats, ["variant"])  # all windows closed: the final readout
    by_day = compare_to_control(daily, keys=("metric", "day"), planned_n=400)
    assert by_day["cs_low"].notna().any()


def test_daily_conversions_without_covariates_take_the_first_event_day(data: dict) -> None:
    """Conversions alone use a shortcut (first qualifying day per user): same numbers."""
    a, e = data["tables"]
    conversions = [
        MetricDefinition("reported", "conversion", ("report_created",), window_days=3),
        METRICS[4],
    ]
    daily = daily_stats(a, e, "checklist", conversions)
    for day in (0, 2, 6, 16, int(daily["day"].max())):
        cutoff = START + (day + 1) * DAY
        reference, _ = reference_per_user(*data["pandas"], conversions, cutoff=cutoff)
        expected = reference_sums(reference, conversions, ["variant"])
        engine = daily[daily["day"] == day].drop(columns=["day", "date"])
        assert_sums_match(engine, expected, ["variant"])
    # from the main pass's first conversion times (no second pass over the events)
    both = experiment_stats(
        a,
        e,
        "checklist",
        [*METRICS[:4], *conversions],
        segments=["plan"],
        first_times=["reported", "any_activity", "sessions"],  # sessions is no conversion
    )
    assert set(both.prepared.first_times) == {"reported", "any_activity"}
    reused = daily_stats(a, e, "checklist", conversions, prepared=both.prepared)
    pd.testing.assert_frame_equal(reused, daily)
    # a start that is not a UTC midnight: exposure days are counted from it
    start = START - DAY + pd.Timedelta(hours=6)
    shifted = daily_stats(a, e, "checklist", conversions, start=start, prepared=both.prepared)
    for day in (0, 3, 9):
        cutoff = start + (day + 1) * DAY
        reference, _ = reference_per_user(*data["pandas"], conversions, cutoff=cutoff)
        expected = reference_sums(reference, conversions, ["variant"])
        engine = shifted[shifted["day"] == day].drop(columns=["day", "date"])
        assert_sums_match(engine, expected, ["variant"])


def test_daily_statistics_respect_end_and_start(data: dict, result) -> None:
    a, e = data["tables"]
    end = START + 5 * DAY + pd.Timedelta(hours=12)
    daily = daily_stats(a, e, "checklist", METRICS[:1], start=START - DAY, end=end)
    assert daily["day"].max() == 6  # day 0 is the day before the start; end falls on day 6
    reference, _ = reference_per_user(*data["pandas"], METRICS[:1], cutoff=end)
    last = daily[daily["day"] == 6].drop(columns=["day", "date"])
    assert_sums_match(last, reference_sums(reference, METRICS[:1], ["variant"]), ["variant"])
    ended = experiment_stats(a, e, "checklist", METRICS[:1], end=end)
    assert_sums_match(ended.stats, last, ["variant"])
    # a start after the first exposures: those users (and their events) count from day 0,
    # so the last day still matches the readout's totals
    late = daily_stats(a, e, "checklist", METRICS[:2], start=START + 3 * DAY, end=end)
    assert late["day"].min() == 0 and late["day"].max() == 2
    final = late[late["day"] == 2].drop(columns=["day", "date"])
    assert_sums_match(
        experiment_stats(a, e, "checklist", METRICS[:2], end=end).stats, final, ["variant"]
    )


def test_segment_statistics_top_k_and_other(data: dict, result) -> None:
    a, e = data["tables"]
    segments = segment_stats(a, e, "checklist", METRICS, "plan", top_k=2, caps=result.caps)
    reference, _ = reference_per_user(*data["pandas"], METRICS, caps=result.caps, segment="plan")
    sizes = reference["segment"].value_counts()
    top = sorted(sizes.index, key=lambda s: (-sizes[s], s))[:2]
    reference["segment"] = reference["segment"].where(reference["segment"].isin(top), "other")
    expected = reference_sums(reference, METRICS, ["segment", "variant"])
    assert_sums_match(segments.drop(columns="segment_rank"), expected, ["segment", "variant"])
    assert list(dict.fromkeys(segments["segment"])) == [*top, "other"]
    per_segment = compare_to_control(segments, keys=("metric", "segment"))
    assert len(per_segment) == len(METRICS) * 3 * 2


def test_one_pass_segments_equal_the_separate_segment_statistics(data: dict, result) -> None:
    a, e = data["tables"]
    a = a.mutate(tier=ibis.ifelse(a.user_id < "u0100", "early", "late"))
    merged = experiment_stats(a, e, "checklist", METRICS, segments=["plan", "tier"], top_k=2)
    pd.testing.assert_frame_equal(merged.stats, result.stats)
    assert merged.arms.equals(result.arms)
    for column in ("plan", "tier"):
        separate = segment_stats(a, e, "checklist", METRICS, column, top_k=2, caps=result.caps)
        mine = merged.segments[merged.segments["segment_column"] == column]
        pd.testing.assert_frame_equal(
            mine.drop(columns="segment_column").reset_index(drop=True),
            separate.reset_index(drop=True),
            check_exact=False,
            rtol=1e-12,
        )


def test_many_segment_groups_fall_back_to_separate_queries(data: dict, monkeypatch) -> None:
    """Past the group limit the summary, top values and users per cell come from their own
    queries: the same statistics, segments and daily view."""
    import workbench.experiment_data as experiment_data

    a, e = data["tables"]
    a = a.mutate(tier=ibis.ifelse(a.user_id < "u0100", "early", "late"))
    kwargs = {"segments": ["plan", "tier"], "top_k": 2, "first_times": ["any_activity"]}
    grouped = experiment_stats(a, e, "checklist", METRICS, **kwargs)
    monkeypatch.setattr(experiment_data, "_GROUPS_LIMIT", 1)
    separate = experiment_stats(a, e, "checklist", METRICS, **kwargs)
    pd.testing.assert_frame_equal(grouped.stats, separate.stats)
    pd.testing.assert_frame_equal(grouped.segments, separate.segments)
    assert grouped.arms.equals(separate.arms)
    assert grouped.first_exposure == separate.first_exposure
    assert grouped.last_exposure == separate.last_exposure
    pd.testing.assert_frame_equal(grouped.prepared.entered, separate.prepared.entered)
    conversions = [m for m in METRICS if m.name == "any_activity"]
    pd.testing.assert_frame_equal(
        daily_stats(a, e, "checklist", conversions, prepared=grouped.prepared),
        daily_stats(a, e, "checklist", conversions, prepared=separate.prepared),
    )


def test_coded_and_plain_exposures_give_the_same_statistics(data: dict, monkeypatch) -> None:
    """Variants and segment labels are stored as small codes unless a column has too many
    values; both ways give the same numbers and labels."""
    import workbench.experiment_data as experiment_data

    a, e = data["tables"]
    kwargs = {"segments": ["plan"], "top_k": 2, "first_times": ["any_activity"]}
    coded = experiment_stats(a, e, "checklist", METRICS, **kwargs)
    assert "CASE" in ibis.to_sql(coded.prepared.exposed)  # read back through the codes
    monkeypatch.setattr(experiment_data, "_distinct_values", lambda *args, **kw: None)
    plain = experiment_stats(a, e, "checklist", METRICS, **kwargs)
    pd.testing.assert_frame_equal(coded.stats, plain.stats)
    pd.testing.assert_frame_equal(coded.segments, plain.segments)
    assert coded.arms.equals(plain.arms) and coded.multi_variant_users == plain.multi_variant_users
    users = [c for c in coded.prepared.exposed.columns if c != "row_id"]  # numbers may differ
    pd.testing.assert_frame_equal(
        coded.prepared.exposed.select(users).order_by("user_id").execute(),
        plain.prepared.exposed.select(users).order_by("user_id").execute(),
    )


def test_events_sorted_by_user_give_the_same_statistics(data: dict, monkeypatch) -> None:
    """The per-user pass may sort the joined events by user first (a log without user
    locality, at a size that spills): the same sums, segments, users and first times."""
    import workbench.experiment_data as experiment_data

    a, e = data["tables"]
    conversions = [METRICS[0], METRICS[4]]
    kwargs = {"segments": ["plan"], "top_k": 2, "first_times": ["any_activity"]}
    plain = experiment_stats(a, e, "checklist", METRICS, **kwargs)
    asked = []

    def always(*args, **kw) -> bool:
        asked.append(args[-2:])  # users, aggregate states
        return True

    exposed = plain.prepared.exposed
    users = exposed.select("user_id", "exposed_us", key=exposed.row_id)
    for sort in (True, False):
        per_user = experiment_data._user_components(
            users, e, METRICS, None, "key", sort_by_user=sort
        )
        assert ("ORDER BY" in ibis.to_sql(per_user)) is sort
    monkeypatch.setattr(experiment_data, "_sort_by_user", always)
    sorted_ = experiment_stats(a, e, "checklist", METRICS, **kwargs)
    states = len(experiment_data._components(METRICS)[0]) + 1  # components + 1 first time
    assert asked == [(int(plain.arms["users"].sum()), states)]
    pd.testing.assert_frame_equal(plain.stats, sorted_.stats)
    pd.testing.assert_frame_equal(plain.segments, sorted_.segments)
    assert plain.arms.equals(sorted_.arms)
    found = [plain.prepared.found.order_by("key").execute()]
    found.append(sorted_.prepared.found.order_by("key").execute())
    pd.testing.assert_frame_equal(*found)
    daily = [daily_stats(a, e, "checklist", conversions[1:], prepared=sorted_.prepared)]
    daily.append(daily_stats(a, e, "checklist", conversions[1:], prepared=plain.prepared))
    pd.testing.assert_frame_equal(*daily)


def test_sorting_by_user_needs_no_locality_and_tables_too_big_for_memory() -> None:
    """`_sort_by_user`: only when the first events are nearly all of different users and the
    per-thread aggregation tables for that many users would not fit in DuckDB's memory."""
    from workbench.experiment_data import _sort_by_user

    users = [f"u{i:05d}" for i in range(70_000)]  # more than the 65,536 events sampled
    at = START + pd.to_timedelta(np.arange(140_000), unit="s")
    interleaved = pd.DataFrame({"user_id": users * 2, "event": "page_view", "timestamp": at})
    clustered = interleaved.sort_values("user_id", kind="stable").assign(timestamp=at)
    metric = [MetricDefinition("views", "mean", "page_view")]
    span = (int(START.value // 1000), int(START.value // 1000) + 86_400_000_000)
    con = ibis.duckdb.connect()
    con.raw_sql("SET memory_limit = '100MB'")
    time_order = con.create_table("time_order", interleaved)
    by_user = con.create_table("by_user", clustered)
    huge, small = 10_000_000, 10_000  # 10M users × 2 threads outgrow 100 MB; 10k do not
    con.raw_sql("SET threads = 2")
    assert _sort_by_user(time_order, metric, None, span, huge, 4)
    assert not _sort_by_user(by_user, metric, None, span, huge, 4)  # 1 distinct user in 2
    assert not _sort_by_user(time_order, metric, None, span, small, 4)
    # no metric event before the end: nothing to sort
    assert not _sort_by_user(time_order, metric, START - DAY, span, huge, 4)


def test_definition_and_data_mistakes_raise_clear_errors(data: dict) -> None:
    a, e = data["tables"]
    for kwargs, match in [
        ({"type": "median"}, "type"),
        ({"type": "ratio"}, "denominator"),
        ({"value": "revenue", "type": "conversion"}, "sums no property"),
        ({"type": "mean", "denominator_events": ("x",)}, "only ratio"),
        ({"type": "mean", "window_days": 0}, "window_days"),
        ({"type": "mean", "winsorize": 99}, "winsorize"),
        ({"type": "conversion", "winsorize": 0.99}, "not winsorized"),
        ({"type": "mean", "events": ()}, "at least one event"),
    ]:
        spec = {"name": "m", "type": "mean", "events": ("a",)} | kwargs
        with pytest.raises(MetricDefinitionError, match=match):
            MetricDefinition(**spec)
    with pytest.raises(MetricDefinitionError, match="ratios"):
        MetricDefinition("r", "ratio", "a", denominator_events="b", covariate_days=7)
    with pytest.raises(MetricDefinitionError, match="not a column"):
        experiment_stats(a, e, "checklist", [MetricDefinition("m", "mean", "a", value="price")])
    with pytest.raises(MetricDefinitionError, match="not a number"):
        experiment_stats(a, e, "checklist", [MetricDefinition("m", "mean", "a", value="platform")])
    with pytest.raises(MetricDefinitionError, match="unique"):
        experiment_stats(a, e, "checklist", METRICS[:1] * 2)
    with pytest.raises(ExperimentDataError, match="no assignments for experiment 'nope'"):
        experiment_stats(a, e, "nope", METRICS[:1])
    with pytest.raises(ExperimentDataError, match="segment column"):
        segment_stats(a, e, "checklist", METRICS[:1], "country")
    assert issubclass(ExperimentDataError, WorkbenchError)
