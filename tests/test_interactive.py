"""Widgets are live for analysts and absent from scheduled runs."""

from __future__ import annotations

import ipywidgets

from workbench.interactive import explore
from workbench.notebook import NotebookRun


def test_explore_builds_controls_when_interactive(monkeypatch):
    monkeypatch.delenv("WORKBENCH_SCHEDULED", raising=False)
    seen = []
    panel = explore(
        lambda segment, metric: seen.append((segment, metric)),
        segment=["pro", "free"],
        metric=["retention"],
    )
    assert isinstance(panel, ipywidgets.interactive)
    assert [w.description for w in panel.kwargs_widgets] == ["Segment", "Metric"]
    assert seen[-1] == ("pro", "retention")
    panel.kwargs_widgets[0].value = "free"
    assert seen[-1] == ("free", "retention")


def test_explore_is_absent_from_scheduled_runs(monkeypatch):
    monkeypatch.setenv("WORKBENCH_SCHEDULED", "1")
    assert explore(lambda segment: None, segment=["a"]) is None
    monkeypatch.delenv("WORKBENCH_SCHEDULED")
    namespace = {"_workbench": {"run_dir": "/tmp/x"}}
    run = NotebookRun(namespace)
    assert run.scheduled and explore(lambda segment: None, run=run, segment=["a"]) is None


def test_notebook_run_sees_only_parameters(tmp_path):
    namespace = {"wb": object(), "In": [], "_": None}
    run = NotebookRun(namespace)
    namespace["run"] = run
    namespace.update(title="T", sources={"users": "u.csv"}, colour="red", _workbench={})
    try:
        run.parameters("data_overview")
    except Exception as exc:  # the parameters are invalid on purpose
        problems = "\n".join(exc.problems)
    assert "colour: unknown key" in problems
    assert "run" not in run.raw_parameters and "wb" not in run.raw_parameters
    assert set(run.raw_parameters) == {"title", "sources", "colour"}
