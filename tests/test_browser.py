"""Readouts in a real browser with the network cut off: charts draw, nothing is fetched."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from browser import chromium_available, render_in_browser
from test_export import run_fixture_notebook

from workbench.export import write_readout

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module", autouse=True)
def require_chromium() -> None:
    """Skip only on request; a missing browser is a failure, since CI installs it."""
    if os.environ.get("WORKBENCH_SKIP_BROWSER") == "1":
        pytest.skip("WORKBENCH_SKIP_BROWSER=1")
    if not chromium_available():
        pytest.fail(
            "browser tests need /usr/bin/chromium and /usr/bin/chromedriver "
            "(Debian packages chromium, chromium-driver); set WORKBENCH_SKIP_BROWSER=1 to skip"
        )


@pytest.fixture(scope="module")
def two_charts_notebook(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The two-chart fixture notebook, executed."""
    return run_fixture_notebook("two_charts", tmp_path_factory.mktemp("executed"))


def test_readout_draws_both_charts_offline(two_charts_notebook: Path, tmp_path: Path) -> None:
    page = write_readout(two_charts_notebook, tmp_path / "readout.html", title="Weekly adoption")
    report = render_in_browser(page)
    assert (report.charts, report.drawn) == (2, 2)
    assert report.console_errors == []
    assert report.external_requests == []
    assert report.title == "Weekly adoption"
    assert "Two charts share one inlined Vega bundle." in report.text


def test_helper_reports_a_chart_that_needs_the_network(
    two_charts_notebook: Path, tmp_path: Path
) -> None:
    nb = nbformat.read(two_charts_notebook, as_version=4)
    chart_html = next(o.data["text/html"] for c in nb.cells if c.get("outputs") for o in c.outputs)
    page = tmp_path / "bare_chart.html"
    page.write_text(f"<!DOCTYPE html><html><body>{chart_html}</body></html>", encoding="utf-8")
    report = render_in_browser(page, wait_s=2)
    assert (report.charts, report.drawn) == (1, 0)
    assert any(url.startswith("https://cdn.jsdelivr.net/") for url in report.external_requests)
    assert report.console_errors
