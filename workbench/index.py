"""reports/index.html: every run, newest first, with the latest good run of each readout marked."""

from __future__ import annotations

import datetime as dt
import json
import os
from html import escape
from pathlib import Path
from typing import Any

from workbench.readout import ANALYSIS_LABELS, readout_css, status_badge
from workbench.runner import TMP_PREFIX


def list_runs(out: str | Path) -> list[dict[str, Any]]:
    """Every completed run under `out` (newest first), read from its summary.json."""
    runs = []
    for summary in Path(out).glob("*/*/*/summary.json"):
        run_dir = summary.parent
        if run_dir.name.startswith(TMP_PREFIX):
            continue
        try:
            data = json.loads(summary.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {"status": "failed", "headline": "summary.json is unreadable"}
        runs.append(
            {
                "analysis": run_dir.parent.parent.name,
                "name": run_dir.parent.name,
                "run_id": run_dir.name,
                "status": data.get("status", "failed"),
                "title": data.get("title", run_dir.parent.name),
                "headline": data.get("headline", ""),
                "generated_at": data.get("generated_at", ""),
                "path": os.path.relpath(run_dir / "readout.html", out),
            }
        )
    runs.sort(key=lambda r: r["run_id"], reverse=True)
    latest_good: set[tuple[str, str]] = set()
    for r in runs:
        key = (r["analysis"], r["name"])
        r["latest_good"] = r["status"] != "failed" and key not in latest_good
        if r["latest_good"]:
            latest_good.add(key)
    return runs


def render_index(runs: list[dict[str, Any]]) -> str:
    """The index page: a self-contained table of runs."""
    rows = []
    for r in runs:
        latest = '<span class="wb-latest">latest good</span>' if r["latest_good"] else ""
        rows.append(
            f"<tr><td>{escape(ANALYSIS_LABELS.get(r['analysis'], r['analysis']))}</td>"
            f"<td>{escape(r['name'])}{latest}</td><td>{status_badge(r['status'])}</td>"
            f'<td><a href="{escape(r["path"])}">{escape(r["title"])}</a><br>'
            f"<small>{escape(r['headline'])}</small></td><td>{escape(r['generated_at'])}</td></tr>"
        )
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    body = (
        "".join(rows)
        or '<tr><td colspan="5">No readouts yet: run '
        "<code>workbench run parameters/</code>.</td></tr>"
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        "<title>Product Ops Workbench readouts</title>"
        f"<style>{readout_css()} body {{ max-width: 1100px; margin: 2rem auto; padding: 0 1rem; }}"
        '</style></head><body><main class="wb-readout wb-index"><h1>Readouts</h1>'
        f'<p class="wb-caption">{len(runs)} run(s), newest first. Updated {now}.</p>'
        "<table><thead><tr><th>Analysis</th><th>Name</th><th>Status</th><th>Readout</th>"
        f"<th>Generated</th></tr></thead><tbody>{body}</tbody></table></main></body></html>"
    )


def write_index(out: str | Path) -> Path:
    """Rebuild `out/index.html` atomically."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "index.html"
    tmp = out / f"{TMP_PREFIX}index.html"
    tmp.write_text(render_index(list_runs(out)), encoding="utf-8")
    os.replace(tmp, path)
    return path
