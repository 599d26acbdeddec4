"""Readout export: an executed notebook becomes one self-contained, offline HTML page for PMs."""

from __future__ import annotations

import copy
import re
from functools import cache
from pathlib import Path
from typing import Any

import nbformat
from nbconvert import HTMLExporter

from workbench.errors import ExportError

TEMPLATES_DIR = Path(__file__).parent / "templates"
REMOVED_CELL_TAGS = frozenset({"injected-parameters", "remove"})
WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"
# Every chart Altair's default renderer emits calls vegaEmbed from its text/html output.
CHART_MARKER = "vegaEmbed("


def export_readout(
    notebook: str | Path | nbformat.NotebookNode,
    *,
    title: str,
    banner_html: str | None = None,
) -> str:
    """Turn an executed notebook into one self-contained, offline readout HTML page."""
    nb = _read(notebook)
    try:
        _keep_reader_content(nb)
        nb.metadata["title"] = title
        resources = {"workbench": {"banner_html": banner_html or "", **_chart_assets(nb)}}
        html, _ = _readout_exporter().from_notebook_node(nb, resources=resources)
    except Exception as exc:
        raise ExportError(f"cannot turn {_describe(notebook)} into a readout: {exc}") from exc
    return html


def write_readout(
    notebook: str | Path | nbformat.NotebookNode,
    path: str | Path,
    *,
    title: str,
    banner_html: str | None = None,
) -> Path:
    """Export a readout and write it to `path` as UTF-8; return the path written."""
    html = export_readout(notebook, title=title, banner_html=banner_html)
    path = Path(path)
    try:
        path.write_text(html, encoding="utf-8")
    except OSError as exc:
        raise ExportError(f"cannot write readout to {path}: {exc}") from exc
    return path


def _read(notebook: str | Path | nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A private copy of the notebook, so that export never changes the caller's notebook."""
    if isinstance(notebook, nbformat.NotebookNode):
        return copy.deepcopy(notebook)
    try:
        return nbformat.read(Path(notebook), as_version=4)
    except Exception as exc:  # nbformat raises OSError, ValueError, ValidationError, ...
        raise ExportError(f"cannot read notebook {notebook}: {exc}") from exc


def _describe(notebook: str | Path | nbformat.NotebookNode) -> str:
    """How error messages name the notebook."""
    return "the notebook" if isinstance(notebook, nbformat.NotebookNode) else f"notebook {notebook}"


def _keep_reader_content(nb: nbformat.NotebookNode) -> None:
    """Drop what a PM should not see: tagged cells, errors, stderr and widgets."""
    nb.cells = [c for c in nb.cells if not REMOVED_CELL_TAGS & set(c.metadata.get("tags", []))]
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if _is_for_readers(o)]
    nb.metadata.pop("widgets", None)


def _is_for_readers(output: nbformat.NotebookNode) -> bool:
    """False for error tracebacks, stderr and ipywidget views (with their text fallback)."""
    if output.output_type == "error":
        return False
    if output.output_type == "stream":
        return output.name != "stderr"
    return WIDGET_VIEW_MIME not in output.get("data", {})


def _chart_assets(nb: nbformat.NotebookNode) -> dict[str, Any]:
    """Template inputs for the Vega bundle: empty when the notebook has no Altair chart."""
    has_charts = any(
        CHART_MARKER in output.get("data", {}).get("text/html", "")
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )
    if not has_charts:
        return {"vega_bundle": "", "vega_debug": {}}
    return _vega_assets()


@cache
def _vega_assets() -> dict[str, Any]:
    """Vega, Vega-Lite and vega-embed as one inline script, and the versions Altair looks for."""
    # Imported here: altair takes seconds to import and pages without charts do not need it.
    import vl_convert
    from altair.vegalite.v6.display import VEGA_VERSION, VEGAEMBED_VERSION, VEGALITE_VERSION

    major, minor = VEGALITE_VERSION.split(".")[:2]
    bundle = vl_convert.javascript_bundle(vl_version=f"v{major}_{minor}")
    return {
        "vega_bundle": re.sub(r"</(script)", r"<\\/\1", bundle, flags=re.IGNORECASE),
        # Key shape from altair/utils/html.py: `${lib.replace("-", "")}_version`.
        "vega_debug": {
            "vega_version": VEGA_VERSION,
            "vegalite_version": VEGALITE_VERSION,
            "vegaembed_version": VEGAEMBED_VERSION,
        },
    }


def _readout_exporter() -> HTMLExporter:
    """nbconvert's HTML exporter on the readout template, with code and prompts hidden."""
    return HTMLExporter(
        template_name="readout",
        extra_template_basedirs=[str(TEMPLATES_DIR)],
        theme="light",
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )
