"""The runner through real Papermill runs: atomic publish, failures, kills, exit codes, index."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import write_parameters

pytestmark = pytest.mark.slow


def workbench(root: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "workbench", *args],
        cwd=root,
        text=True,
        capture_output=True,
        timeout=timeout,
    )


def runs(out: Path, name: str = "good") -> list[Path]:
    folder = out / "data_overview" / name
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".tmp-"))


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def test_failed_run_never_replaces_the_good_one(workspace):
    out = workspace / "reports"
    first = workbench(workspace, "run", "parameters/data_overview/good.yaml")
    assert first.returncode == 0, first.stderr
    (good,) = runs(out)
    assert {p.name for p in good.iterdir()} == {"readout.html", "summary.json", "notebook.ipynb"}
    assert summary(good)["status"] in {"ok", "warning"}
    assert "data_overview/good" in first.stdout and "index:" in first.stdout
    assert "[1/1]" in first.stderr  # progress while running
    good_html = (good / "readout.html").read_bytes()

    events = pd.read_parquet(workspace / "data/events.parquet").drop(columns="event")
    events.to_parquet(workspace / "data/events.parquet")
    second = workbench(workspace, "run", "parameters/data_overview/good.yaml")
    assert second.returncode == 1
    assert "failed" in second.stdout
    older, newer = runs(out)
    assert older == good and (good / "readout.html").read_bytes() == good_html
    failed = summary(newer)
    assert failed["status"] == "failed"
    assert "table 'events', column 'event'" in failed["error"]
    html = (newer / "readout.html").read_text()
    assert "This readout failed" in html, newer
    assert "table 'events', column 'event': required column" in html
    assert (newer / "notebook.ipynb").exists()

    index = (out / "index.html").read_text()
    assert index.count("readout.html") == 2
    assert index.index(newer.name) < index.index(good.name)  # newest first
    rows = {
        r.split("readout.html")[0].rsplit("/", 2)[-2]: r
        for r in index.split("<tr>")
        if "readout.html" in r
    }
    assert "latest good" in rows[good.name] and "latest good" not in rows[newer.name]
    assert "failed" in rows[newer.name]


def test_invalid_parameters_stop_before_any_kernel(workspace):
    write_parameters(workspace, "bad", {"top_events": "lots", "colour": "red"})
    out = workspace / "reports"
    result = workbench(workspace, "run", "parameters/")
    assert result.returncode == 2
    assert "bad.yaml" in result.stderr
    assert "top_events" in result.stderr and "colour: unknown key" in result.stderr
    assert "nothing was run" in result.stderr
    assert not out.exists()
    checked = workbench(workspace, "check", "parameters/")
    assert checked.returncode == 2 and "ok: " in checked.stdout and "good.yaml" in checked.stdout
    missing = workbench(workspace, "run", "parameters/nope.yaml")
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_killed_run_leaves_earlier_readouts_intact(workspace):
    out = workspace / "reports"
    assert workbench(workspace, "run", "parameters/").returncode == 0
    (good,) = runs(out)
    before = {p: p.read_bytes() for p in good.iterdir()}
    index_before = (out / "index.html").read_bytes()

    proc = subprocess.Popen(
        [sys.executable, "-m", "workbench", "run", "parameters/"],
        cwd=workspace,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 60
    while time.time() < deadline and not list((out / "data_overview/good").glob(".tmp-*/*")):
        time.sleep(0.05)
    assert list((out / "data_overview/good").glob(".tmp-*")), "the run never started"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)

    assert runs(out) == [good]
    assert {p: p.read_bytes() for p in good.iterdir()} == before
    assert (out / "index.html").read_bytes() == index_before
    rebuilt = workbench(workspace, "index")
    assert rebuilt.returncode == 0
    assert ".tmp-" not in (out / "index.html").read_text()


def test_hostile_text_is_escaped_everywhere(workspace):
    events = pd.read_parquet(workspace / "data/events.parquet")
    events.loc[events.index[:50], "event"] = "</script><script>window.wbPwned=1</script>"
    events.to_parquet(workspace / "data/events.parquet")
    write_parameters(workspace, "good", {"title": "<img src=x onerror=alert(1)> Overview"})
    result = workbench(workspace, "run", "parameters/")
    assert result.returncode == 0, result.stdout + result.stderr
    (run,) = runs(workspace / "reports")
    html = (run / "readout.html").read_text()
    assert "<script>window.wbPwned" not in html and "<img src=x" not in html
    assert '&lt;script&gt;alert("x")&lt;/script&gt; please fix' in html  # feedback text
    assert "&lt;img src=x onerror=alert(1)&gt; Overview" in html
    index = (workspace / "reports/index.html").read_text()
    assert "<img src=x" not in index

    from tests.browser import chromium_available, render_in_browser

    if os.environ.get("WORKBENCH_SKIP_BROWSER") == "1":
        pytest.skip("browser checks disabled by WORKBENCH_SKIP_BROWSER=1")
    assert chromium_available(), "install Debian's chromium and chromium-driver"
    report = render_in_browser(run / "readout.html")
    assert report.charts == report.drawn == 2
    assert report.console_errors == [] and report.external_requests == []
    assert "<img src=x onerror=alert(1)> Overview" in report.text


def test_plain_papermill_run_validates_parameters_too(workspace):
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    bad = {"top_events": 0, "colour": "red"}
    with pytest.raises(PapermillExecutionError) as info:
        pm.execute_notebook(
            str(workspace / "notebooks/data_overview.ipynb"),
            str(workspace / "out.ipynb"),
            parameters=bad,
            cwd=str(workspace / "notebooks"),
            progress_bar=False,
            kernel_name="python3",
        )
    assert info.value.ename == "ParameterError"
    assert "colour: unknown key" in info.value.evalue
    assert "top_events: Input should be greater than or equal to 1" in info.value.evalue


def test_unquoted_yaml_dates_reach_the_notebook(workspace):
    import datetime as dt

    from workbench.runner import injectable

    window = {"start": dt.date(2026, 3, 9), "end": dt.date(2026, 4, 12)}
    assert injectable({"window": window, "as_of": [dt.datetime(2026, 4, 1, 9, 30)]}) == {
        "window": {"start": "2026-03-09", "end": "2026-04-12"},
        "as_of": ["2026-04-01T09:30:00"],
    }
    path = write_parameters(workspace, "good", {"window": window})
    assert "start: 2026-03-09" in path.read_text()  # a YAML date, not quoted text
    result = workbench(workspace, "run", "parameters/")
    assert result.returncode == 0, result.stdout + result.stderr
    (run,) = runs(workspace / "reports")
    data_window = summary(run)["data_window"]
    assert "2026-03-09" <= data_window["start"] <= data_window["end"] <= "2026-04-12"


def test_secrets_never_reach_a_readout_or_the_log(workspace, monkeypatch):
    """A database error that echoes an expanded ${VAR}, and a literal password in a URL's
    query, end up in no published file, in the index or in the command's output."""
    secret, literal = "s3cr3t-from-env", "literal-pw-9876"
    monkeypatch.setenv("WB_TEST_SECRET", secret)
    sources = {
        "users": {"url": f"duckdb:///tmp/no-such-dir/x.duckdb?password={literal}", "table": "u"},
        "events": {"url": "duckdb:///nonexistent-${WB_TEST_SECRET}/x.duckdb", "table": "events"},
    }
    write_parameters(workspace, "leak", {"sources": sources})
    result = workbench(workspace, "run", "parameters/data_overview/leak.yaml")
    assert result.returncode == 1, result.stdout + result.stderr
    (run,) = runs(workspace / "reports", "leak")
    error = summary(run)["error"]
    assert "cannot be opened" in error and "***" in error  # the message stays readable
    published = [p for p in (workspace / "reports").rglob("*") if p.is_file()]
    assert {p.name for p in published} >= {"readout.html", "summary.json", "notebook.ipynb"}
    for text in [result.stdout, result.stderr, *(p.read_text() for p in published)]:
        assert secret not in text and literal not in text
