"""The result model every analysis shares: key numbers, data checks and the result object."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

CheckStatus = Literal["pass", "warn", "fail"]


@dataclass(frozen=True)
class KeyNumber:
    """One headline number, with its unit and uncertainty where it has one."""

    name: str
    value: float
    unit: str = ""
    ci_low: float | None = None
    ci_high: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The summary.json record."""
        return {
            "name": self.name,
            "value": _plain(self.value),
            "unit": self.unit,
            "ci_low": _plain(self.ci_low),
            "ci_high": _plain(self.ci_high),
        }


@dataclass(frozen=True)
class Check:
    """A data check: pass / warn / fail with the number behind it."""

    name: str
    status: CheckStatus
    detail: str

    def to_dict(self) -> dict[str, Any]:
        """The summary.json record."""
        return {"name": self.name, "status": self.status, "detail": self.detail}


@dataclass
class AnalysisResult:
    """What an analysis returns: headline, bullets, key numbers, checks, method, result frames."""

    headline: str
    bullets: list[str] = field(default_factory=list)
    key_numbers: list[KeyNumber] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    method: list[str] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    data_window: dict[str, str | None] = field(default_factory=lambda: {"start": None, "end": None})

    @property
    def status(self) -> Literal["ok", "warning"]:
        """'warning' when any check warns or fails, else 'ok' (a run that crashed is 'failed')."""
        return "warning" if any(c.status != "pass" for c in self.checks) else "ok"

    def results_json(self) -> dict[str, list[dict[str, Any]]]:
        """The `results` of summary.json: every result frame as a list of records."""
        return {name: records(frame) for name, frame in self.tables.items()}


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A frame as JSON-safe records (timestamps as ISO text, NaN as null)."""
    return [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def _plain(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    return value
