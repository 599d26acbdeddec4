"""The standard readout: small section objects that render to HTML, and summary.json."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from html import escape
from importlib import resources
from typing import Any

import pandas as pd

from workbench import __version__
from workbench.results import AnalysisResult, Check, KeyNumber, _plain
from workbench.sources import InputInfo

SUMMARY_SCHEMA = "workbench.summary/1"
ANALYSIS_LABELS = {
    "data_overview": "Data overview",
    "cohort_adoption": "Cohort adoption",
    "feedback_theming": "Feedback theming",
    "experiment_readout": "Experiment readout",
}


def readout_css() -> str:
    """The readout's stylesheet (screen and print), shared by notebooks, readouts and the index."""
    return resources.files("workbench").joinpath("static/readout.css").read_text(encoding="utf-8")


def format_value(value: float | None, unit: str = "") -> str:
    """A number as a PM reads it: shares as percentages, counts with separators."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "–"
    if unit == "share":
        return f"{value * 100:.1f}%"
    if unit == "points":
        return f"{value * 100:+.1f} pts"
    if isinstance(value, int) or float(value).is_integer() and abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 100:
        text = f"{value:,.1f}"
    else:
        text = f"{value:,.3g}" if abs(value) < 1 else f"{value:,.2f}"
    return f"{text} {escape(unit)}".strip() if unit and unit != "count" else text


class Section:
    """A piece of the readout that renders itself to HTML (and so displays in notebooks)."""

    def to_html(self) -> str:  # pragma: no cover - every section overrides it
        """The section's HTML; every data-derived string is escaped."""
        raise NotImplementedError

    def _repr_html_(self) -> str:
        return self.to_html()


@dataclass
class TitleBlock(Section):
    """Title, analysis, owner, question, data window, generated at and the status badge."""

    title: str
    analysis: str
    status: str
    generated_at: str
    owner: str = ""
    question: str = ""
    data_window: dict[str, str | None] = field(default_factory=dict)
    with_style: bool = True

    def to_html(self) -> str:
        """The title block, with the readout stylesheet once at the top of the page."""
        start, end = self.data_window.get("start"), self.data_window.get("end")
        window = f"{escape(start or 'start of data')} – {escape(end or 'end of data')}"
        facts = [
            ("Analysis", escape(ANALYSIS_LABELS.get(self.analysis, self.analysis))),
            ("Owner", escape(self.owner) if self.owner else "–"),
            ("Data window", window),
            ("Generated", escape(self.generated_at)),
        ]
        dl = "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in facts)
        question = f'<p class="wb-question">{escape(self.question)}</p>' if self.question else ""
        style = f"<style>{readout_css()}</style>" if self.with_style else ""
        return (
            f'{style}<header class="wb-readout wb-title">'
            f'<div class="wb-title-row"><h1>{escape(self.title)}</h1>'
            f'{status_badge(self.status)}</div>{question}<dl class="wb-facts">{dl}</dl></header>'
        )


def status_badge(status: str) -> str:
    """A coloured ok / warning / failed badge."""
    return f'<span class="wb-badge wb-{escape(status)}">{escape(status)}</span>'


@dataclass
class Summary(Section):
    """The headline sentence and 2–5 bullets written from the numbers."""

    headline: str
    bullets: list[str] = field(default_factory=list)

    def to_html(self) -> str:
        """Headline and bullets."""
        items = "".join(f"<li>{escape(b)}</li>" for b in self.bullets)
        bullets = f"<ul>{items}</ul>" if items else ""
        return (
            '<section class="wb-readout wb-summary"><h2>Summary</h2>'
            f'<p class="wb-headline">{escape(self.headline)}</p>{bullets}</section>'
        )


@dataclass
class KeyNumbers(Section):
    """A row of cards, one per key number, with its interval where it has one."""

    numbers: list[KeyNumber]

    def to_html(self) -> str:
        """The cards."""
        cards = []
        for n in self.numbers:
            ci = ""
            if n.ci_low is not None and n.ci_high is not None:
                ci = (
                    f'<div class="wb-ci">95% CI {format_value(n.ci_low, n.unit)} – '
                    f"{format_value(n.ci_high, n.unit)}</div>"
                )
            cards.append(
                f'<div class="wb-card"><div class="wb-card-name">{escape(n.name)}</div>'
                f'<div class="wb-card-value">{format_value(n.value, n.unit)}</div>{ci}</div>'
            )
        return (
            '<section class="wb-readout wb-keynumbers"><h2>Key numbers</h2>'
            f'<div class="wb-cards">{"".join(cards)}</div></section>'
        )


@dataclass
class Heading(Section):
    """A section heading with an optional one-line caption saying what to look at."""

    title: str
    caption: str = ""
    level: int = 2

    def to_html(self) -> str:
        """The heading and caption."""
        caption = f'<p class="wb-caption">{escape(self.caption)}</p>' if self.caption else ""
        return (
            f'<div class="wb-readout wb-heading"><h{self.level}>{escape(self.title)}'
            f"</h{self.level}>{caption}</div>"
        )


@dataclass
class Note(Section):
    """A one-line note in place of a section that has nothing to show (and says why)."""

    text: str

    def to_html(self) -> str:
        """The note."""
        return f'<div class="wb-readout"><p class="wb-note">{escape(self.text)}</p></div>'


@dataclass
class Table(Section):
    """A data table with a caption; every cell escaped, numbers formatted."""

    frame: pd.DataFrame
    caption: str = ""
    units: dict[str, str] = field(default_factory=dict)
    max_rows: int = 50

    def to_html(self) -> str:
        """The table."""
        frame = self.frame.head(self.max_rows)
        head = "".join(f"<th>{escape(str(c))}</th>" for c in frame.columns)
        rows = []
        for record in frame.itertuples(index=False):
            cells = []
            for column, value in zip(frame.columns, record, strict=True):
                numeric = isinstance(value, int | float) and not isinstance(value, bool)
                text = (
                    format_value(value, self.units.get(column, ""))
                    if numeric
                    else (escape(str(_plain(value))) if value is not None else "–")
                )
                cells.append(f'<td class="{"wb-num" if numeric else ""}">{text}</td>')
            rows.append(f"<tr>{''.join(cells)}</tr>")
        more = ""
        if len(self.frame) > self.max_rows:
            more = f'<p class="wb-note">First {self.max_rows} of {len(self.frame):,} rows.</p>'
        caption = f'<p class="wb-caption">{escape(self.caption)}</p>' if self.caption else ""
        return (
            f'<div class="wb-readout wb-table">{caption}<table><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>{more}</div>"
        )


@dataclass
class Checks(Section):
    """Data checks: pass / warn / fail rows, each with the number behind it."""

    checks: list[Check]

    def to_html(self) -> str:
        """The checks table, failures and warnings first."""
        order = {"fail": 0, "warn": 1, "pass": 2}
        rows = "".join(
            f'<tr><td><span class="wb-check wb-check-{escape(c.status)}">{escape(c.status)}</span>'
            f"</td><td>{escape(c.name)}</td><td>{escape(c.detail)}</td></tr>"
            for c in sorted(self.checks, key=lambda c: order.get(c.status, 3))
        )
        return (
            '<section class="wb-readout wb-checks"><h2>Data checks</h2><table><thead><tr>'
            "<th>Status</th><th>Check</th><th>Detail</th></tr></thead>"
            f"<tbody>{rows}</tbody></table></section>"
        )


@dataclass
class Method(Section):
    """Plain-words definitions and the statistical choices in force."""

    items: list[str]

    def to_html(self) -> str:
        """The method list."""
        items = "".join(f"<li>{escape(i)}</li>" for i in self.items)
        return f'<section class="wb-readout wb-method"><h2>Method</h2><ul>{items}</ul></section>'


@dataclass
class Appendix(Section):
    """Parameters (secrets masked) and provenance."""

    parameters: dict[str, Any]
    provenance: dict[str, Any]

    def to_html(self) -> str:
        """Parameters as JSON and a provenance table."""
        params = escape(json.dumps(self.parameters, indent=2, ensure_ascii=False, default=str))
        facts = [
            ("Workbench version", self.provenance.get("workbench_version")),
            ("Workbench commit", self.provenance.get("git_commit")),
            ("Engine", self.provenance.get("engine")),
            ("Run time", f"{self.provenance.get('duration_s', 0):.1f} s"),
        ]
        prov = "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in facts)
        inputs = "".join(
            f"<tr><td>{escape(i['name'])}</td><td>{escape(i['uri'])}</td>"
            f'<td class="wb-num">{i["rows"]:,}</td>'
            f"<td><code>{escape(i['fingerprint'])}</code></td></tr>"
            for i in self.provenance.get("inputs", [])
        )
        return (
            '<section class="wb-readout wb-appendix"><h2>Appendix</h2>'
            f"<h3>Provenance</h3><table>{prov}</table>"
            "<h3>Inputs</h3><table><thead><tr><th>Table</th><th>Source</th><th>Rows</th>"
            f"<th>Fingerprint</th></tr></thead><tbody>{inputs}</tbody></table>"
            f"<h3>Parameters</h3><pre>{params}</pre></section>"
        )


@dataclass
class Readout:
    """One readout: the result of an analysis plus everything needed to present and record it."""

    analysis: str
    name: str
    title: str
    result: AnalysisResult
    parameters: dict[str, Any]
    inputs: list[InputInfo]
    owner: str = ""
    question: str = ""
    extra_checks: list[Check] = field(default_factory=list)
    git_commit: str = "unknown"
    started_at: float = 0.0
    generated_at: str = field(
        default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    )

    @property
    def checks(self) -> list[Check]:
        """Source notes (from loading the tables) followed by the analysis's own checks."""
        return self.extra_checks + self.result.checks

    @property
    def status(self) -> str:
        """'warning' when any check warns or fails, else 'ok'."""
        return "warning" if any(c.status != "pass" for c in self.checks) else "ok"

    def title_block(self) -> TitleBlock:
        """Section 1."""
        return TitleBlock(
            self.title,
            self.analysis,
            self.status,
            self.generated_at,
            self.owner,
            self.question,
            self.result.data_window,
        )

    def summary(self) -> Summary:
        """Section 2."""
        return Summary(self.result.headline, self.result.bullets)

    def key_numbers(self) -> KeyNumbers:
        """Section 3."""
        return KeyNumbers(self.result.key_numbers)

    def data_checks(self) -> Checks:
        """Section 5."""
        return Checks(self.checks)

    def method(self) -> Method:
        """Section 6."""
        return Method(self.result.method)

    def appendix(self, duration_s: float | None = None) -> Appendix:
        """Section 7."""
        return Appendix(self.parameters, self.provenance(duration_s))

    def header(self) -> Sections:
        """Sections 1–3 together: what a PM reads first."""
        return Sections([self.title_block(), self.summary(), self.key_numbers()])

    def provenance(self, duration_s: float | None = None) -> dict[str, Any]:
        """Workbench version and commit, engine, inputs and run time."""
        import time

        elapsed = duration_s if duration_s is not None else time.time() - self.started_at
        return {
            "workbench_version": __version__,
            "git_commit": self.git_commit,
            "engine": "duckdb",
            "inputs": [i.to_dict() for i in self.inputs],
            "duration_s": round(elapsed if self.started_at else 0.0, 3),
        }

    def summary_json(self, duration_s: float | None = None) -> dict[str, Any]:
        """The machine-readable readout (schema workbench.summary/1)."""
        return {
            "schema": SUMMARY_SCHEMA,
            "analysis": self.analysis,
            "name": self.name,
            "title": self.title,
            "status": self.status,
            "headline": self.result.headline,
            "generated_at": self.generated_at,
            "data_window": self.result.data_window,
            "key_numbers": [k.to_dict() for k in self.result.key_numbers],
            "checks": [c.to_dict() for c in self.checks],
            "parameters": self.parameters,
            "provenance": self.provenance(duration_s),
            "results": self.result.results_json(),
        }


@dataclass
class Sections(Section):
    """Several sections shown as one output."""

    parts: list[Section]

    def to_html(self) -> str:
        """The parts in order."""
        return "".join(p.to_html() for p in self.parts)


def summary_schema() -> dict[str, Any]:
    """The JSON Schema of summary.json (workbench.summary/1), for downstream tools and tests."""
    text = resources.files("workbench").joinpath("static/summary.schema.json").read_text("utf-8")
    return json.loads(text)
