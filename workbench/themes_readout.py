"""How the feedback theming readout shows its result: theme cards with sparklines and quotes,
and the charts (volume over time, themes by size, theme x segment)."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

import altair as alt
import numpy as np
import pandas as pd

from workbench import charts
from workbench.readout import Section, format_value

CARD_STYLE = """
.wb-themes { display: grid; grid-template-columns: repeat(auto-fill, minmax(15rem, 1fr));
  gap: .8rem; margin: .4rem 0 1rem; }
.wb-theme { border: 1px solid #d9e2ec; border-radius: 8px; padding: .7rem .9rem;
  background: #fff; break-inside: avoid; }
.wb-theme-emerging { border-color: #e07b39; box-shadow: inset 4px 0 0 #e07b39; }
.wb-theme h4 { margin: 0 0 .2rem; font-size: 1rem; }
.wb-theme-meta { color: #52606d; font-size: .82rem; margin-bottom: .3rem; }
.wb-theme-flag { display: inline-block; border-radius: 4px; font-size: .75rem; font-weight: 600;
  padding: 0 .35rem; margin-right: .3rem; background: #fdf0e6; color: #a4501c; }
.wb-theme-numbers { display: flex; flex-wrap: wrap; gap: .2rem .9rem; font-size: .85rem;
  margin: .2rem 0 .3rem; }
.wb-theme-numbers b { display: block; font-size: 1.05rem; color: #102a43; }
.wb-theme blockquote { margin: .3rem 0; padding: .1rem .5rem; border-left: 3px solid #d9e2ec;
  color: #3e4c59; font-size: .85rem; }
"""


def sparkline(values: list[float], width: int = 120, height: int = 28) -> str:
    """An inline SVG line of `values` (NaN drawn as 0), for a trend at a glance; numbers only."""
    if not values:
        return ""
    v = np.nan_to_num(np.asarray(values, dtype=float))
    top = v.max() if v.max() > 0 else 1.0
    xs = np.linspace(1, width - 1, len(v)) if len(v) > 1 else np.array([width / 2])
    ys = height - 2 - (v / top) * (height - 4)
    points = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))
    return (
        f'<svg class="wb-spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'role="img" aria-label="share per period">'
        f'<polyline fill="none" stroke="{charts.PALETTE[0]}" stroke-width="1.6" '
        f'points="{points}"/></svg>'
    )


def _number(label: str, value: str) -> str:
    return f"<div>{escape(label)}<b>{value}</b></div>"


@dataclass
class ThemeCards(Section):
    """The top themes as cards: emerging themes first, then by size; each with count, share,
    a trend sparkline, sentiment, NPS and its impact, and quotes (all escaped)."""

    themes: pd.DataFrame
    trends: pd.DataFrame
    top: int = 8

    def ordered(self) -> pd.DataFrame:
        """Emerging themes (largest lift first), then the rest by count."""
        if not len(self.themes):
            return self.themes
        frame = self.themes.assign(_lift=self.themes["lift"].fillna(0))
        emerging = frame[frame["emerging"]].sort_values(["_lift", "theme_id"], ascending=[0, 1])
        rest = frame[~frame["emerging"]].sort_values(["count", "theme_id"], ascending=[0, 1])
        return pd.concat([emerging, rest]).head(max(self.top, len(emerging))).drop(columns="_lift")

    def to_html(self) -> str:
        """The cards."""
        if not len(self.themes):
            return '<div class="wb-readout"><p class="wb-note">No theme was found.</p></div>'
        cards = [self._card(row) for row in self.ordered().to_dict(orient="records")]
        return (
            f'<div class="wb-readout"><style>{CARD_STYLE}</style>'
            f'<div class="wb-themes">{"".join(cards)}</div></div>'
        )

    def _card(self, row: dict) -> str:
        shares = self.trends[self.trends["theme_id"] == row["theme_id"]]["share"].tolist()
        flags = ""
        if row["emerging"]:
            flags += f'<span class="wb-theme-flag">emerging {row["lift"]:.1f}x</span>'
        if row["spike"]:
            flags += '<span class="wb-theme-flag">spike</span>'
        nps = f"{row['nps']:.0f}" if pd.notna(row["nps"]) else "–"
        impact = f"{row['nps_impact']:+.1f}" if pd.notna(row["nps_impact"]) else "–"
        numbers = "".join(
            [
                _number("Items", f"{int(row['count']):,}"),
                _number("Share", format_value(float(row["share"]), "share")),
                _number("Sentiment", f"{round(row['sentiment_mean'], 2) + 0.0:+.2f}"),
                _number("NPS", nps),
                _number("NPS impact", impact),
            ]
        )
        quotes = "".join(f"<blockquote>{escape(q)}</blockquote>" for q in row["quotes"])
        origin = "codebook theme" if row["origin"] == "codebook" else "discovered theme"
        css = "wb-theme wb-theme-emerging" if row["emerging"] else "wb-theme"
        return (
            f'<div class="{css}"><h4>{escape(str(row["label"]))}</h4>'
            f'<div class="wb-theme-meta">{flags}{escape(origin)} · '
            f"<code>{escape(str(row['theme_id']))}</code></div>"
            f'<div class="wb-theme-numbers">{numbers}</div>{sparkline(shares)}{quotes}</div>'
        )


def volume_chart(themes: pd.DataFrame, trends: pd.DataFrame, top: int = 6) -> alt.Chart:
    """Share of items per period for the emerging and the largest themes."""
    order = ThemeCards(themes, trends, top=top).ordered()
    labels = dict(zip(order["theme_id"], order["label"], strict=True))
    frame = trends[trends["theme_id"].isin(labels)].copy()
    frame["theme"] = frame["theme_id"].map(labels)
    frame["period_status"] = np.where(frame["complete"], "complete", "partial")
    return (
        alt.Chart(frame, title="Share of feedback per period")
        .mark_line()
        .encode(
            x=alt.X("period:T", title=None),
            y=alt.Y("share:Q", title="Share of items", axis=alt.Axis(format=".0%")),
            color=alt.Color("theme:N", title=None, sort=list(labels.values())),
            tooltip=[
                alt.Tooltip("theme:N"),
                alt.Tooltip("period:T"),
                alt.Tooltip("count:Q", title="items in theme", format=","),
                alt.Tooltip("items:Q", title="items in period", format=","),
                alt.Tooltip("share:Q", format=".1%"),
                alt.Tooltip("period_status:N", title="period"),
            ],
        )
    )


def themes_chart(themes: pd.DataFrame) -> alt.Chart:
    """Every theme by number of items, coloured by where it comes from (codebook/discovered)."""
    return (
        alt.Chart(themes[["theme_id", "label", "origin", "count", "share"]], title="Themes")
        .mark_bar()
        .encode(
            x=alt.X("count:Q", title="Items"),
            y=alt.Y("label:N", sort="-x", title=None),
            color=alt.Color("origin:N", title=None),
            tooltip=[
                alt.Tooltip("label:N", title="theme"),
                alt.Tooltip("origin:N"),
                alt.Tooltip("count:Q", title="items", format=","),
                alt.Tooltip("share:Q", format=".1%"),
            ],
        )
        .properties(height=alt.Step(20))
    )


def segment_chart(themes: pd.DataFrame, segments: pd.DataFrame) -> alt.Chart:
    """Share of each segment value's items in each theme: a heatmap per segment column."""
    labels = dict(zip(themes["theme_id"], themes["label"], strict=True)) | {
        "unassigned": "(unassigned)"
    }
    frame = segments.copy()
    frame["theme"] = frame["theme_id"].map(labels)
    frame["segment_value"] = frame["segment"] + " = " + frame["value"].astype(str)
    return (
        alt.Chart(frame, title="Themes by segment")
        .mark_rect()
        .encode(
            x=alt.X("segment_value:N", title=None, axis=alt.Axis(labelAngle=-30)),
            y=alt.Y("theme:N", title=None, sort=list(labels.values())),
            color=alt.Color("share:Q", title="Share", scale=alt.Scale(scheme="blues")),
            tooltip=[
                alt.Tooltip("theme:N"),
                alt.Tooltip("segment_value:N", title="segment"),
                alt.Tooltip("count:Q", title="items in theme", format=","),
                alt.Tooltip("items:Q", title="items in segment", format=","),
                alt.Tooltip("share:Q", format=".1%"),
            ],
        )
        .properties(height=alt.Step(18))
    )


def theme_trend_chart(label: str, trends: pd.DataFrame) -> alt.Chart:
    """Items per period in one theme, with the count its baseline predicts."""
    frame = trends.copy()
    return (
        alt.Chart(frame, title=f"Items per period: {label}")
        .mark_bar()
        .encode(
            x=alt.X("period:T", title=None),
            y=alt.Y("count:Q", title="Items"),
            color=alt.condition(
                alt.datum.spike, alt.value(charts.PALETTE[1]), alt.value(charts.PALETTE[0])
            ),
            tooltip=[
                alt.Tooltip("period:T"),
                alt.Tooltip("count:Q", format=","),
                alt.Tooltip("expected:Q", format=".1f"),
                alt.Tooltip("share:Q", format=".1%"),
                alt.Tooltip("spike:N"),
            ],
        )
    )
