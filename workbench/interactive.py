"""Widgets for analysts in JupyterLab: live controls that scheduled runs and readouts never show."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from workbench.notebook import SCHEDULED_ENV


def is_interactive(run: Any = None) -> bool:
    """True when an analyst runs the notebook (not a `workbench run` and not a readout export)."""
    if run is not None and getattr(run, "scheduled", False):
        return False
    return os.environ.get(SCHEDULED_ENV) != "1"


def explore(view: Callable[..., Any], *, run: Any = None, **choices: Sequence[Any]) -> Any:
    """Show `view(**picked)` under one dropdown per choice (segment, period, metric...).

    In a scheduled run this shows nothing and returns None, so readouts carry no widget
    output or widget state. Each keyword is a control: its values are the options, the first
    one is the default.
    """
    if not is_interactive(run):
        return None
    import ipywidgets as widgets
    from IPython.display import display

    controls = {
        name: widgets.Dropdown(
            options=list(values),
            value=list(values)[0],
            description=name.replace("_", " ").capitalize(),
        )
        for name, values in choices.items()
        if len(list(values))
    }

    def show(**picked: Any) -> Any:
        return view(**picked)

    panel = widgets.interactive(show, **controls)
    display(panel)
    return panel
