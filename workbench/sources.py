"""Sources: open declared tables as Ibis tables (DuckDB by default) and apply column mappings."""

from __future__ import annotations

import glob
import hashlib
import os
import re
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ibis

from workbench.errors import SourceError
from workbench.parameters import SourceSpec, mask_url, resolve_path


@dataclass(frozen=True)
class InputInfo:
    """Provenance of one input table: where it came from, how many rows, a content fingerprint."""

    name: str
    uri: str
    rows: int
    fingerprint: str

    def to_dict(self) -> dict[str, Any]:
        """The summary.json record."""
        return {
            "name": self.name,
            "uri": self.uri,
            "rows": self.rows,
            "fingerprint": self.fingerprint,
        }


DEFAULT_MEMORY_LIMIT = "1.2GB"
_MEMORY_SIZE = re.compile(r"\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)", re.IGNORECASE)
MEMORY_LIMIT_ENV = "WORKBENCH_DUCKDB_MEMORY_LIMIT"


def spill_directory() -> Path:
    """A new, not yet created folder for one DuckDB database's spill files. DuckDB creates it
    only if it has to spill, and deletes it when the database closes."""
    name = f"workbench-duckdb-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    return Path(tempfile.gettempdir()) / name


def connect_duckdb(database: str | Path = ":memory:", *, read_only: bool = False) -> Any:
    """An Ibis DuckDB connection with UTC session time, so results never depend on the host.

    DuckDB's memory is capped at 1.2 GB (override with the environment variable
    WORKBENCH_DUCKDB_MEMORY_LIMIT, e.g. "8GB"): beyond it DuckDB spills to a temporary folder
    under the system's temp directory instead of taking 80% of the machine, so two readouts
    running side by side (`--jobs 2`) stay within memory. The process itself needs a few
    hundred MB more (Python, pandas, charts).

    Each connection spills into a folder of its own: DuckDB names its spill files the same in
    every database and deletes the folder it created when it closes, so a shared folder let one
    run (or a second connection in the same process) destroy another's spilled data.
    """
    con = ibis.duckdb.connect(str(database), read_only=read_only)
    con.raw_sql("SET TimeZone = 'UTC'")
    limit = os.environ.get(MEMORY_LIMIT_ENV, "").strip() or DEFAULT_MEMORY_LIMIT
    if not _MEMORY_SIZE.fullmatch(limit):
        raise SourceError(
            f"{MEMORY_LIMIT_ENV}={limit!r} is not a memory size (write e.g. 1.5GB, 800MB, 8GiB)"
        )
    con.raw_sql(f"SET memory_limit = '{limit}'")
    con.raw_sql(f"SET temp_directory = '{spill_directory().as_posix()}'")
    return con


def open_source(name: str, spec: SourceSpec, *, root: str | Path, con: Any) -> ibis.Table:
    """Open one declared source as an Ibis table; file sources are read by `con` (DuckDB)."""
    try:
        if spec.kind == "frame":
            return ibis.memtable(spec.frame)
        if spec.kind == "path":
            files = expand_files(spec.path, root)
            readers = {"csv": con.read_csv, "parquet": con.read_parquet, "json": con.read_json}
            target = [str(f) for f in files] if len(files) > 1 else str(files[0])
            return readers[spec.format](target, table_name=f"wb_{name}")
        if spec.kind == "duckdb":
            db = connect_duckdb(resolve_path(spec.duckdb, root), read_only=True)
            return db.sql(spec.query) if spec.query else db.table(spec.table)
        backend = ibis.connect(spec.url)
        return backend.sql(spec.query) if spec.query else backend.table(spec.table)
    except SourceError:
        raise
    except Exception as exc:  # third-party errors are mapped to one plain message here
        raise SourceError(
            f"source '{name}' ({describe_source(spec)}): cannot be opened: {_first_line(exc)}"
        ) from exc


def apply_columns(table: ibis.Table, mapping: dict[str, str], *, name: str) -> ibis.Table:
    """Rename the user's columns to ours (`mapping` is ours → theirs)."""
    missing = {ours: theirs for ours, theirs in mapping.items() if theirs not in table.columns}
    if missing:
        pairs = ", ".join(f"{ours} ← '{theirs}'" for ours, theirs in missing.items())
        raise SourceError(
            f"source '{name}': columns mapping names column(s) not in the data ({pairs}); "
            f"available: {list(table.columns)}"
        )
    return table.rename({ours: theirs for ours, theirs in mapping.items()})


def expand_files(path: str, root: str | Path) -> list[Path]:
    """The files a path or glob names, sorted so runs are deterministic."""
    full = resolve_path(path, root)
    files = sorted(Path(p) for p in glob.glob(str(full))) if glob.has_magic(str(full)) else [full]
    files = [f for f in files if f.is_file()]
    if not files:
        raise SourceError(f"no file matches {path!r} (looked in {Path(root).resolve()})")
    return files


@dataclass(frozen=True)
class KnownCounts:
    """Counts a file's own metadata gives without reading its data: rows, and nulls per column
    (only the columns whose every row group records a null count)."""

    rows: int
    nulls: dict[str, int]


def parquet_counts(
    spec: SourceSpec, root: str | Path, mapping: dict[str, str] | None = None
) -> KnownCounts | None:
    """Row and null counts of a Parquet source from its footers (None for other sources, or
    when a footer cannot be read). Columns are named as after `mapping` (ours → theirs)."""
    if spec.kind != "path" or spec.format != "parquet":
        return None
    import pyarrow.parquet as pq

    ours = {theirs: mine for mine, theirs in (mapping or {}).items()}
    rows, nulls, unknown = 0, {}, set()
    try:
        for path in expand_files(spec.path, root):
            meta = pq.ParquetFile(path).metadata
            rows += meta.num_rows
            for g in range(meta.num_row_groups):
                group = meta.row_group(g)
                for c in range(group.num_columns):
                    chunk = group.column(c)
                    name = ours.get(chunk.path_in_schema, chunk.path_in_schema)
                    stats = chunk.statistics
                    if stats is None or not stats.has_null_count:
                        unknown.add(name)
                    else:
                        nulls[name] = nulls.get(name, 0) + stats.null_count
    except Exception:  # noqa: BLE001 - the contract check then scans the data instead
        return None
    return KnownCounts(rows, {c: n for c, n in nulls.items() if c not in unknown})


def describe_source(spec: SourceSpec) -> str:
    """A short, secret-free description of a source for messages and provenance."""
    if spec.kind == "frame":
        return f"data frame ({len(spec.frame):,} rows)"
    if spec.kind == "path":
        return spec.path
    where = spec.duckdb if spec.kind == "duckdb" else mask_url(spec.url)
    return f"{where} :: {spec.table or 'query'}"


def fingerprint(name: str, spec: SourceSpec, table: ibis.Table, *, root: str | Path) -> str:
    """A content fingerprint: SHA-256 of the files, or of the schema and row count elsewhere."""
    digest = hashlib.sha256()
    if spec.kind == "path":
        for f in expand_files(spec.path, root):
            with f.open("rb") as fh:
                for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                    digest.update(block)
    elif spec.kind == "frame":
        import pandas as pd

        digest.update(pd.util.hash_pandas_object(spec.frame, index=True).values.tobytes())
    else:
        digest.update(str(table.schema()).encode())
        digest.update(describe_source(spec).encode())
    return "sha256:" + digest.hexdigest()[:16]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
