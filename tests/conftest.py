"""Shared fixtures: the repository, a small workspace with its own data, and sample data."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo() -> Path:
    """The repository root."""
    return REPO


def tiny_tables(seed: int = 3, users: int = 60) -> dict[str, pd.DataFrame]:
    """A small, valid product dataset: users, events, assignments, feedback."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2026-03-02", tz="UTC")
    user_ids = [f"u{i:03d}" for i in range(users)]
    signup = start + pd.to_timedelta(rng.integers(0, 40 * 24, users), unit="h")
    users_df = pd.DataFrame(
        {"user_id": user_ids, "signup_at": signup, "plan": rng.choice(["free", "pro"], users)}
    )
    n = users * 15
    who = rng.integers(0, users, n)
    events = pd.DataFrame(
        {
            "user_id": np.array(user_ids)[who],
            "event": rng.choice(
                ["session_start", "report_created", "export_csv"], n, p=[0.6, 0.3, 0.1]
            ),
            "timestamp": signup[who] + pd.to_timedelta(rng.integers(1, 50 * 24, n), unit="h"),
        }
    )
    assignments = pd.DataFrame(
        {
            "user_id": user_ids,
            "experiment": "exp",
            "variant": rng.choice(["control", "treatment"], users),
            "assigned_at": signup,
        }
    )
    feedback = pd.DataFrame(
        {
            "feedback_id": [f"f{i}" for i in range(10)],
            "created_at": start + pd.to_timedelta(np.arange(10), unit="D"),
            "text": ["Export is slow"] * 9 + ['<script>alert("x")</script> please fix'],
        }
    )
    return {"users": users_df, "events": events, "assignments": assignments, "feedback": feedback}


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A workspace like a user's: notebooks/, parameters/ and data/ with tiny Parquet tables."""
    shutil.copytree(REPO / "notebooks", tmp_path / "notebooks")
    data = tmp_path / "data"
    data.mkdir()
    for name, frame in tiny_tables().items():
        frame.to_parquet(data / f"{name}.parquet")
    write_parameters(tmp_path, "good", {})
    return tmp_path


def overview_parameters(**overrides: object) -> dict:
    """Valid data overview parameters for the workspace fixture."""
    params = {
        "title": "Tiny overview",
        "owner": "Tests",
        "sources": {t: f"data/{t}.parquet" for t in ("users", "events", "assignments", "feedback")},
        "top_events": 5,
    }
    params.update(overrides)
    return params


def write_parameters(root: Path, name: str, overrides: dict, *, raw: str | None = None) -> Path:
    """Write parameters/data_overview/<name>.yaml (valid unless overridden or `raw` is given)."""
    folder = root / "parameters" / "data_overview"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(raw if raw is not None else yaml.safe_dump(overview_parameters(**overrides)))
    return path
