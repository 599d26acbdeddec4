"""What a notebook calls: capture and validate its parameters, load tables, build and publish."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import ibis

from workbench.contracts import conform_counted
from workbench.parameters import (
    CommonParameters,
    find_root,
    mask_secrets,
    validate_parameters,
)
from workbench.readout import Readout
from workbench.results import AnalysisResult, Check
from workbench.sources import (
    InputInfo,
    apply_columns,
    connect_duckdb,
    describe_source,
    fingerprint,
    open_source,
    parquet_counts,
)

SCHEDULED_ENV = "WORKBENCH_SCHEDULED"
CONTEXT_NAME = "_workbench"
IPYTHON_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open"}


class NotebookRun:
    """A notebook's run: created in the first cell, before the parameters cell.

    It remembers which names exist before the parameters cell, so that `parameters()` sees
    exactly the defaults plus what Papermill injected, and can reject unknown keys. In a run of
    a parameter file (the runner lists its keys in the context) only those keys count: the
    rest take the documented defaults, as `workbench check` validated them.
    """

    def __init__(self, namespace: dict[str, Any]) -> None:
        self._namespace = namespace
        self._before = set(namespace)
        self.started_at = time.time()
        self.raw_parameters: dict[str, Any] = {}
        self.inputs: list[InputInfo] = []
        self.source_checks: list[Check] = []
        self.con: Any = None

    @property
    def context(self) -> dict[str, Any]:
        """What the runner injected (run folder, parameter file, root), empty when interactive."""
        return dict(self._namespace.get(CONTEXT_NAME) or {})

    @property
    def scheduled(self) -> bool:
        """True in a `workbench run` (no widgets); False for an analyst in JupyterLab."""
        return bool(self.context) or os.environ.get(SCHEDULED_ENV) == "1"

    @property
    def root(self) -> Path:
        """The workspace root that relative paths in parameters resolve against."""
        return Path(self.context.get("root") or find_root(Path.cwd()))

    def parameters(self, analysis: str) -> CommonParameters:
        """Validate the notebook's parameters (defaults plus injected) for `analysis`."""
        names = [
            n
            for n in self._namespace
            if n not in self._before
            and not n.startswith("_")
            and n not in IPYTHON_NAMES
            and self._namespace[n] is not self
        ]
        given = self.context.get("keys")
        if given is not None:
            # a parameter file's run: the parameters cell's sample values are not defaults
            # (a left-out window.end or codebook would silently come from the sample)
            names = [n for n in names if n in set(given)]
        self.raw_parameters = {n: self._namespace[n] for n in names}
        source = self.context.get("parameter_file", "notebook parameters")
        return validate_parameters(analysis, self.raw_parameters, root=self.root, source=source)

    def load_tables(self, params: CommonParameters) -> dict[str, ibis.Table]:
        """Open every declared source, apply the column mapping and check its contract."""
        self.con = connect_duckdb()
        tables: dict[str, ibis.Table] = {}
        self.inputs, self.source_checks = [], []
        for name, spec in params.sources.items():
            table = open_source(name, spec, root=self.root, con=self.con)
            mapping = params.columns.get(name, {})
            table = apply_columns(table, mapping, name=name)
            known = parquet_counts(spec, self.root, mapping)
            table, notes, rows = conform_counted(table, name, known)
            tables[name] = table
            self.source_checks += notes
            if rows is None:
                rows = int(table.count().execute())
            self.inputs.append(
                InputInfo(
                    name,
                    describe_source(spec),
                    rows,
                    fingerprint(name, spec, table, root=self.root),
                )
            )
        return tables

    def readout(self, params: CommonParameters, result: AnalysisResult) -> Readout:
        """The standard readout of `result`, with masked parameters and provenance."""
        return Readout(
            analysis=params.analysis,
            name=self.context.get("name", "notebook"),
            title=params.title,
            result=result,
            parameters=mask_secrets(self.raw_parameters),
            inputs=self.inputs,
            owner=params.owner,
            question=params.question,
            extra_checks=self.source_checks,
            git_commit=workbench_commit(),
            started_at=self.started_at,
        )

    def publish(self, readout: Readout) -> Path | None:
        """Write summary.json into the run folder in a scheduled run; nothing when interactive."""
        run_dir = self.context.get("run_dir")
        if not run_dir:
            return None
        path = Path(run_dir) / "summary.json"
        data = readout.summary_json()
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
        return path


def workbench_commit() -> str:
    """The git commit of the workbench source, or 'unknown' outside a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"
