"""End to end: sample data → `workbench run parameters/` → every readout ok, valid, offline."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from tests.conftest import REPO
from workbench.readout import summary_schema

pytestmark = pytest.mark.slow
NETWORK_REFERENCE = re.compile(
    r"<(script|link|img|iframe|source|video|audio|embed|object)\b[^>]*\b(src|href|data)\s*=\s*"
    r"[\"']?\s*(https?:)?//|url\(\s*[\"']?\s*(https?:)?//|@import\s+[\"']?(https?:)?//",
    re.IGNORECASE,
)


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run every parameter file of the repository into a fresh reports folder."""
    if not (REPO / "data/sample/manifest.json").exists():
        subprocess.run([sys.executable, "-m", "workbench", "sample"], cwd=REPO, check=True)
    out = tmp_path_factory.mktemp("reports")
    result = subprocess.run(
        [sys.executable, "-m", "workbench", "run", "parameters/", "--out", str(out), "--jobs", "2"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def readouts(out: Path) -> list[Path]:
    return sorted(out.glob("*/*/*/readout.html"))


def test_every_parameter_file_gives_one_good_readout(sample_run):
    files = sorted((REPO / "parameters").rglob("*.yaml"))
    found = readouts(sample_run)
    assert len(found) == len(files) > 0
    assert {(p.parents[2].name, p.parents[1].name) for p in found} == {
        (f.parent.name, f.stem) for f in files
    }
    for html in found:
        summary = json.loads((html.parent / "summary.json").read_text())
        jsonschema.validate(summary, summary_schema())
        assert summary["status"] in {"ok", "warning"}, summary.get("error")
        assert (html.parent / "notebook.ipynb").exists()
    index = (sample_run / "index.html").read_text()
    assert all(os.path.relpath(h, sample_run) in index for h in found)


def test_readouts_are_offline_small_and_code_free(sample_run):
    for html_path in readouts(sample_run):
        html = html_path.read_text()
        assert not NETWORK_REFERENCE.search(html), html_path
        assert html_path.stat().st_size < 2 * 1024 * 1024, html_path
        assert 'class="jp-InputArea' not in html and "injected-parameters" not in html
        assert "application/vnd.jupyter.widget" not in html


@pytest.mark.browser
def test_readouts_draw_every_chart_in_a_real_browser(sample_run):
    from tests.browser import chromium_available, render_in_browser

    if os.environ.get("WORKBENCH_SKIP_BROWSER") == "1":
        pytest.skip("browser checks disabled by WORKBENCH_SKIP_BROWSER=1")
    assert chromium_available(), "install Debian's chromium and chromium-driver"
    for html_path in readouts(sample_run):
        report = render_in_browser(html_path)
        assert report.charts > 0 and report.drawn == report.charts, html_path
        assert report.console_errors == [], report.console_errors
        assert report.external_requests == [], report.external_requests
        assert "Data checks" in report.text and "Appendix" in report.text
