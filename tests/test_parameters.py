"""Parameter files: YAML errors, schema problems listed all at once, secrets and masking."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.conftest import overview_parameters, write_parameters
from workbench.errors import ParameterError
from workbench.parameters import (
    check_parameter_file,
    mask_secrets,
    mask_url,
    redact,
    secret_values,
    validate_parameters,
)


def problems_of(path) -> list[str]:
    with pytest.raises(ParameterError) as info:
        check_parameter_file(path)
    return info.value.problems


def test_valid_file_gives_typed_parameters(workspace):
    params = check_parameter_file(workspace / "parameters/data_overview/good.yaml")
    assert params.title == "Tiny overview"
    assert params.top_events == 5
    assert params.sources["events"].format == "parquet"
    assert params.timezone == "UTC"


def test_malformed_yaml_names_line(workspace):
    path = write_parameters(workspace, "broken", {}, raw="title: [unclosed\nsources: {}\n")
    (problem,) = problems_of(path)
    assert "malformed YAML" in problem and "line" in problem


def test_every_problem_is_listed_with_its_key_path(workspace):
    path = write_parameters(
        workspace,
        "bad",
        {
            "colour": "blue",
            "top_events": "many",
            "window": {"start": "2026-02-30"},
            "timezone": "Mars/Olympus",
            "sources": {"users": "data/users.parquet", "events": "data/nope.parquet"},
        },
    )
    problems = problems_of(path)
    joined = "\n".join(problems)
    assert "colour: unknown key" in joined
    assert "top_events:" in joined and "'many'" in joined
    assert "window.start:" in joined
    assert "timezone:" in joined and "Mars/Olympus" in joined
    assert "sources.events" in joined and "nope.parquet" in joined
    assert len(problems) == 5


def test_missing_required_table_and_unknown_table(workspace):
    path = write_parameters(
        workspace,
        "tables",
        {"sources": {"users": "data/users.parquet", "orders": "data/users.parquet"}},
    )
    (problem,) = problems_of(path)
    assert "missing required table(s) ['events']" in problem
    assert "unknown table(s) ['orders']" in problem


def test_window_order_and_top_level_shape(workspace):
    path = write_parameters(
        workspace, "window", {"window": {"start": "2026-05-01", "end": "2026-04-01"}}
    )
    assert "after end" in problems_of(path)[0]
    path = write_parameters(workspace, "list", {}, raw="- a\n- b\n")
    assert "must be a mapping" in problems_of(path)[0]
    path = write_parameters(workspace, "empty", {}, raw="")
    assert "empty" in problems_of(path)[0]


def test_file_outside_an_analysis_folder_is_rejected(workspace):
    path = workspace / "parameters" / "stray.yaml"
    path.write_text("title: x\n")
    assert "not an analysis" in problems_of(path)[0]


def test_source_needs_exactly_one_kind(workspace):
    raw = overview_parameters()
    raw["sources"]["events"] = {"path": "data/events.parquet", "url": "duckdb://x.db"}
    with pytest.raises(ParameterError, match="exactly one of"):
        validate_parameters("data_overview", raw, root=workspace)
    raw["sources"]["events"] = {"url": "postgresql://db/x"}
    with pytest.raises(ParameterError, match="needs 'table' or 'query'"):
        validate_parameters("data_overview", raw, root=workspace)
    raw["sources"]["events"] = {"path": "data/events.unknown"}
    with pytest.raises(ParameterError, match="cannot tell the format"):
        validate_parameters("data_overview", raw, root=workspace)


def test_glob_must_match_something(workspace):
    raw = overview_parameters()
    raw["sources"]["events"] = "data/event*.parquet"
    assert validate_parameters("data_overview", raw, root=workspace).sources["events"].path
    raw["sources"]["events"] = "data/nothing-*.parquet"
    with pytest.raises(ParameterError, match="no file matches"):
        validate_parameters("data_overview", raw, root=workspace)


def test_secrets_come_from_environment(workspace, monkeypatch):
    raw = overview_parameters()
    raw["sources"]["events"] = {
        "url": "postgresql://me:${WB_TEST_PW}@db.internal/prod",
        "table": "events",
    }
    with pytest.raises(ParameterError, match="WB_TEST_PW is not set"):
        validate_parameters("data_overview", raw, root=workspace)
    monkeypatch.setenv("WB_TEST_PW", "hunter2")
    params = validate_parameters("data_overview", raw, root=workspace)
    assert params.sources["events"].url == "postgresql://me:hunter2@db.internal/prod"
    shown = str(mask_secrets(raw))
    assert "hunter2" not in shown and "me:***@db.internal" in shown


def test_masking_hides_literal_passwords():
    assert mask_url("postgresql://me:hunter2@db:5432/x") == "postgresql://me:***@db:5432/x"
    assert mask_url("duckdb://local.db") == "duckdb://local.db"
    masked = mask_secrets(
        {
            "sources": {"e": {"url": "snowflake://u:pw@acct/db"}},
            "api_key": "abc",
            "nested": [{"password": "p"}],
        }
    )
    assert masked == {
        "sources": {"e": {"url": "snowflake://u:***@acct/db"}},
        "api_key": "***",
        "nested": [{"password": "***"}],
    }


def test_masking_hides_secret_query_values():
    url = "snowflake://u@acct/db?warehouse=wh&password=s3cr%40t&api_key=k1&token=#frag"
    assert (
        mask_url(url) == "snowflake://u@acct/db?warehouse=wh&password=***&api_key=***&token=#frag"
    )
    assert (
        mask_url("pg://me:pw@h:notaport/db?sslpassword=x")
        == "pg://me:***@h:notaport/db?sslpassword=***"
    )
    assert mask_url("duckdb:///data/x.duckdb") == "duckdb:///data/x.duckdb"  # left as written
    assert mask_secrets({"url": url})["url"] == mask_url(url)


def test_secret_values_are_what_a_file_holds_secretly(monkeypatch):
    monkeypatch.setenv("WB_HOST", "db.internal")
    monkeypatch.setenv("WB_PW", "pa ss")
    raw = {
        "title": "Readout",
        "sources": {
            "events": {"url": "postgresql://me:${WB_PW}@${WB_HOST}/prod", "table": "events"},
            "users": {"url": "snowflake://u:lit%40pw@acct/db?token=tok123"},
        },
        "api_key": "abc",
        "nested": [{"password": 123456}],
    }
    assert secret_values(raw) == ["db.internal", "lit%40pw", "123456", "lit@pw", "tok123"] + [
        "pa ss",
        "abc",
    ]


def test_redact_replaces_every_encoding_of_a_secret():
    import html
    import json

    secret = 'p"w<&>/1'
    text = " | ".join([secret, json.dumps(secret), html.escape(secret), "p%22w%3C%26%3E%2F1"])
    assert redact(text, [secret]) == '*** | "***" | *** | ***'
    # a short secret is replaced only where it stands alone
    assert redact("password ab in about ab.", ["ab"]) == "password *** in about ***."
    assert redact("nothing to hide", []) == "nothing to hide"


def test_error_values_never_show_secrets(workspace, monkeypatch):
    monkeypatch.setenv("WB_TEST_PW", "hunter2")
    raw = overview_parameters(password="${WB_TEST_PW}")
    with pytest.raises(ParameterError) as info:
        validate_parameters("data_overview", raw, root=workspace)
    assert "hunter2" not in str(info.value)


def test_a_parameter_file_run_ignores_the_sample_values_of_the_parameters_cell(tmp_path) -> None:
    """Keys a parameter file leaves out take the documented defaults, not the notebook's
    sample values (which once cut a readout at the sample's window end)."""
    from workbench.notebook import CONTEXT_NAME, NotebookRun

    (tmp_path / "data").mkdir()
    pd.DataFrame(
        {"user_id": ["u1"], "event": ["x"], "timestamp": [pd.Timestamp(0, tz="UTC")]}
    ).to_parquet(tmp_path / "data/events.parquet")
    pd.DataFrame({"user_id": ["u1"], "signup_at": [pd.Timestamp(0, tz="UTC")]}).to_parquet(
        tmp_path / "data/users.parquet"
    )
    sources = {"users": "data/users.parquet", "events": "data/events.parquet"}
    namespace: dict = {}
    run = NotebookRun(namespace)
    # the parameters cell: sample values
    namespace.update(title="Sample", sources=sources, top_events=3, segments=["plan"])
    # injected by the runner from a file that gives only title and sources
    namespace.update(title="From the file", sources=sources)
    namespace[CONTEXT_NAME] = {"root": str(tmp_path), "keys": ["sources", "title"]}
    params = run.parameters("data_overview")
    assert params.title == "From the file"
    assert params.top_events == 10 and params.segments == []  # the model's defaults
    assert set(run.raw_parameters) == {"title", "sources"}
    namespace[CONTEXT_NAME] = {"root": str(tmp_path)}  # no file: the cell's values count
    assert run.parameters("data_overview").top_events == 3
