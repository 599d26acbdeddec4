"""The workbench's errors: one hierarchy whose messages an analyst or a PM can act on."""

from __future__ import annotations


class WorkbenchError(Exception):
    """Base class of every error the workbench raises on purpose."""


class ParameterError(WorkbenchError):
    """A parameter file or notebook parameters are invalid; `problems` lists every one."""

    def __init__(self, problems: list[str], source: str = "parameters") -> None:
        self.problems = list(problems)
        self.source = source
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s)\n{lines}")


class SourceError(WorkbenchError):
    """A declared source cannot be opened or read."""


class DataContractError(WorkbenchError):
    """A table does not meet its contract (missing column, wrong type, duplicates, empty)."""

    def __init__(
        self,
        table: str,
        problem: str,
        *,
        column: str | None = None,
        rows: int | None = None,
        example: object = None,
    ) -> None:
        self.table = table
        self.column = column
        self.problem = problem
        self.rows = rows
        self.example = example
        where = f"table '{table}'" + (f", column '{column}'" if column else "")
        detail = problem
        if rows is not None:
            detail += f" ({rows:,} row{'s' if rows != 1 else ''}"
            detail += f", e.g. {example!r})" if example is not None else ")"
        super().__init__(f"{where}: {detail}")


class ExportError(WorkbenchError):
    """An executed notebook could not be turned into a readout."""
