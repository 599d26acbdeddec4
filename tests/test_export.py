"""Readout export: offline, code-free, widget-free HTML from executed fixture notebooks."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest
import vl_convert
from altair.vegalite.v6.display import VEGA_VERSION, VEGAEMBED_VERSION, VEGALITE_VERSION
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook, new_output

from workbench import export
from workbench.errors import ExportError
from workbench.export import export_readout, write_readout

FIXTURES = Path(__file__).parent / "fixtures" / "notebooks"
BUNDLE_MARKER = "window.vegaEmbed="
NETWORK_TAG = re.compile(
    r"<(?:script|link|img|iframe|source|audio|video|embed|object)\b[^>]*?"
    r"\b(?:src|href|data)\s*=\s*[\"']?\s*(?:https?:)?//",
    re.IGNORECASE,
)
NETWORK_CSS = re.compile(r"(?:@import|url\()\s*[\"']?\s*(?:https?:)?//", re.IGNORECASE)


def run_fixture_notebook(name: str, out_dir: Path, *, allow_errors: bool = False) -> Path:
    """Execute tests/fixtures/notebooks/<name>.ipynb in the python3 kernel; return its path."""
    nb = nbformat.read(FIXTURES / f"{name}.ipynb", as_version=4)
    NotebookClient(
        nb,
        kernel_name="python3",
        timeout=120,
        allow_errors=allow_errors,
        resources={"metadata": {"path": str(out_dir)}},
    ).execute()
    path = out_dir / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Each fixture notebook executed once per module, on first use."""
    out_dir = tmp_path_factory.mktemp("executed")
    paths: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in paths:
            paths[name] = run_fixture_notebook(
                name, out_dir, allow_errors=name == "errors_and_stderr"
            )
        return paths[name]

    return get


@pytest.fixture(scope="module")
def two_charts_html(executed: Callable[[str], Path]) -> str:
    """The readout of the notebook with two Altair charts."""
    return export_readout(executed("two_charts"), title="Weekly adoption")


@pytest.fixture(scope="module")
def no_charts_html(executed: Callable[[str], Path]) -> str:
    """The readout of the notebook with a table and no chart."""
    return export_readout(executed("no_charts"), title="Plain readout")


def test_code_inputs_and_prompts_are_hidden(two_charts_html: str) -> None:
    assert "Weekly adoption" in two_charts_html
    for code_trace in ('class="jp-CodeMirrorEditor', 'class="highlight', 'class="jp-InputPrompt'):
        assert code_trace not in two_charts_html
    assert not re.search(r"(In|Out)(&nbsp;|\s)?\[\d*\]:", two_charts_html)


def test_two_charts_share_one_vega_bundle(two_charts_html: str) -> None:
    assert two_charts_html.count(BUNDLE_MARKER) == 1
    assert two_charts_html.count('id="altair-viz-') == 2
    debug = re.search(r"window\.VEGA_DEBUG = (\{.*?\});", two_charts_html)
    assert debug is not None
    assert json.loads(debug.group(1)) == {
        "vega_version": VEGA_VERSION,
        "vegalite_version": VEGALITE_VERSION,
        "vegaembed_version": VEGAEMBED_VERSION,
    }
    assert two_charts_html.index(BUNDLE_MARKER) < two_charts_html.index('<main class="wb-page">')


@pytest.mark.parametrize("page", ["two_charts_html", "no_charts_html"])
def test_page_references_nothing_on_the_network(page: str, request: pytest.FixtureRequest) -> None:
    html = request.getfixturevalue(page)
    assert NETWORK_TAG.findall(html) == []
    assert NETWORK_CSS.findall(html) == []
    for loader in ("require.min.js", "MathJax", "mermaid", "html-manager", "fonts.googleapis"):
        assert loader not in html


def test_two_chart_page_is_under_2_mb(two_charts_html: str) -> None:
    assert len(two_charts_html.encode()) < 2_000_000


def test_page_without_charts_stays_small(no_charts_html: str) -> None:
    assert BUNDLE_MARKER not in no_charts_html
    assert "VEGA_DEBUG" not in no_charts_html
    assert "accounts counted" in no_charts_html
    assert ">pro<" in no_charts_html
    assert len(no_charts_html.encode()) < 400_000


def test_light_theme_container_and_print_styles(no_charts_html: str) -> None:
    assert 'data-jp-theme-light="true"' in no_charts_html
    assert "max-width: 1100px" in no_charts_html
    assert "@media print" in no_charts_html
    assert "break-inside: avoid" in no_charts_html


def test_tagged_cells_are_removed(executed: Callable[[str], Path]) -> None:
    nb = nbformat.read(executed("tagged_cells"), as_version=4)
    html = export_readout(nb, title="Tagged cells")
    assert "sk-live-7f3a9c" not in html
    assert "injected-parameters" not in html
    assert "scratch work" not in html
    assert "token length: 14" in html
    assert len(nb.cells) == 4, "export must not change the caller's notebook"


def test_widgets_and_their_state_are_removed(executed: Callable[[str], Path]) -> None:
    path = executed("with_widget")
    assert "widgets" in nbformat.read(path, as_version=4).metadata
    html = export_readout(path, title="Widgets")
    assert "after the widget" in html
    for widget_trace in ("application/vnd.jupyter.widget", "IntSlider", "Threshold", "embed-amd"):
        assert widget_trace not in html


def test_errors_and_stderr_are_removed(executed: Callable[[str], Path]) -> None:
    html = export_readout(executed("errors_and_stderr"), title="Errors")
    assert "kept on stdout" in html
    for hidden in ("noise on stderr", "boom in the analysis", "ValueError", "Traceback"):
        assert hidden not in html


def test_banner_is_first_in_body_and_title_escaped(executed: Callable[[str], Path]) -> None:
    banner = '<div class="run-failed">The run failed at step 3.</div>'
    html = export_readout(executed("no_charts"), title="Q1 <retention> & more", banner_html=banner)
    assert re.search(r'<main class="wb-page">\s*' + re.escape(banner), html)
    assert "<title>Q1 &lt;retention&gt; &amp; more</title>" in html


def test_script_end_tags_in_the_bundle_are_escaped(monkeypatch: pytest.MonkeyPatch) -> None:
    export._vega_assets.cache_clear()
    monkeypatch.setattr(vl_convert, "javascript_bundle", lambda **_: "s = '</SCRIPT>';")
    chart = new_output("display_data", data={"text/html": "<script>vegaEmbed(el, spec)</script>"})
    try:
        html = export_readout(new_notebook(cells=[new_code_cell(outputs=[chart])]), title="t")
    finally:
        export._vega_assets.cache_clear()
    assert "s = '<\\/SCRIPT>';" in html
    assert "</SCRIPT>" not in html


def test_write_readout_writes_utf8_file(executed: Callable[[str], Path], tmp_path: Path) -> None:
    path = write_readout(executed("no_charts"), tmp_path / "readout.html", title="Café")
    assert path == tmp_path / "readout.html"
    assert "<title>Café</title>" in path.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "cannot read notebook"),
        ('{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": 3}', "cannot read"),
        (
            '{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, '
            '"cells": [{"id": "c1", "cell_type": "code", "source": "1", "metadata": {}}]}',
            "cannot turn notebook",
        ),
    ],
    ids=["not-json", "cells-not-a-list", "cell-without-outputs"],
)
def test_unreadable_notebook_raises_export_error(
    content: str, message: str, tmp_path: Path
) -> None:
    path = tmp_path / "corrupt.ipynb"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ExportError, match=message):
        export_readout(path, title="Corrupt")


def test_missing_notebook_raises_export_error(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="cannot read notebook"):
        export_readout(tmp_path / "missing.ipynb", title="Missing")


def test_unwritable_destination_raises_export_error(tmp_path: Path) -> None:
    nb = new_notebook(cells=[])
    with pytest.raises(ExportError, match="cannot write readout"):
        write_readout(nb, tmp_path / "no-such-folder" / "readout.html", title="t")
