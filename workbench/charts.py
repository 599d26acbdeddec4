"""Charts: one Altair theme for every readout, and the few chart shapes readouts share."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import altair as alt
import pandas as pd
from altair.utils.display import HTMLRenderer
from altair.vegalite.v6 import display as vl_display

PALETTE = ["#2f5d8a", "#e07b39", "#3f9a6b", "#b04a6f", "#7a6fbf", "#c2a53a", "#5aa3c8", "#8c8c8c"]
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
WIDTH = 640


class ScriptSafeJSONEncoder(json.JSONEncoder):
    """JSON that cannot end the <script> it sits in: '<', '>' and '&' become \\u escapes."""

    def iterencode(self, o: Any, _one_shot: bool = False) -> Iterator[str]:
        """Encode as usual, then escape the three characters HTML would act on."""
        for chunk in super().iterencode(o, _one_shot):
            yield chunk.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


alt.renderers.register(
    "workbench",
    HTMLRenderer(
        mode="vega-lite",
        template="universal",
        vega_version=vl_display.VEGA_VERSION,
        vegaembed_version=vl_display.VEGAEMBED_VERSION,
        vegalite_version=vl_display.VEGALITE_VERSION,
        json_kwds={"cls": ScriptSafeJSONEncoder},
    ),
)
alt.renderers.enable("workbench")


@alt.theme.register("workbench", enable=True)
def workbench_theme() -> alt.theme.ThemeConfig:
    """Quiet, print-friendly defaults: system fonts, light grid, the workbench palette."""
    return {
        "config": {
            "font": FONT,
            "background": "white",
            "view": {"continuousWidth": WIDTH, "continuousHeight": 260, "stroke": None},
            "range": {"category": PALETTE},
            "axis": {
                "labelColor": "#3e4c59",
                "titleColor": "#3e4c59",
                "gridColor": "#eef2f6",
                "domainColor": "#9aa5b1",
                "tickColor": "#9aa5b1",
                "titleFontWeight": 500,
            },
            "legend": {"labelColor": "#3e4c59", "titleColor": "#3e4c59", "orient": "bottom"},
            "title": {"anchor": "start", "fontSize": 14, "fontWeight": 600, "color": "#1f2933"},
            "line": {"strokeWidth": 2.2, "point": True},
            "bar": {"color": PALETTE[0]},
        }
    }


def line_over_time(
    frame: pd.DataFrame,
    x: str,
    y: str,
    *,
    title: str,
    y_title: str,
    color: str | None = None,
    y_format: str = ",.0f",
) -> alt.Chart:
    """A line chart over time with tooltips."""
    tooltip = [
        alt.Tooltip(f"{x}:T", title=x.replace("_", " ")),
        alt.Tooltip(f"{y}:Q", title=y_title, format=y_format),
    ]
    encoding = {
        "x": alt.X(f"{x}:T", title=None),
        "y": alt.Y(f"{y}:Q", title=y_title, axis=alt.Axis(format=y_format)),
    }
    if color:
        encoding["color"] = alt.Color(f"{color}:N", title=None)
        tooltip.insert(0, alt.Tooltip(f"{color}:N"))
    return alt.Chart(frame, title=title).mark_line().encode(**encoding, tooltip=tooltip)


def ranked_bars(
    frame: pd.DataFrame,
    label: str,
    value: str,
    *,
    title: str,
    value_title: str,
    extra_tooltips: tuple[str, ...] = (),
) -> alt.Chart:
    """Horizontal bars sorted by value, with tooltips."""
    tooltip = [alt.Tooltip(f"{label}:N"), alt.Tooltip(f"{value}:Q", title=value_title, format=",")]
    tooltip += [alt.Tooltip(f"{t}:Q", format=",") for t in extra_tooltips]
    return (
        alt.Chart(frame, title=title)
        .mark_bar()
        .encode(
            x=alt.X(f"{value}:Q", title=value_title),
            y=alt.Y(f"{label}:N", sort="-x", title=None),
            tooltip=tooltip,
        )
        .properties(height=alt.Step(22))
    )
