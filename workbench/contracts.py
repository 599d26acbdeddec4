"""Table contracts: required columns and types per table, checked in the engine before analysis."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import ibis
import ibis.expr.datatypes as dt

from workbench.errors import DataContractError
from workbench.results import Check
from workbench.sources import KnownCounts

Kind = Literal["id", "text", "timestamp", "score"]
UTC_TIMESTAMP = dt.Timestamp(timezone="UTC")


@dataclass(frozen=True)
class TableContract:
    """Required and optional columns of one table (after mapping), and which must be unique."""

    required: dict[str, Kind]
    optional: dict[str, Kind] = field(default_factory=dict)
    unique: tuple[str, ...] = ()


CONTRACTS: dict[str, TableContract] = {
    "users": TableContract(
        {"user_id": "id", "signup_at": "timestamp"}, {"account_id": "id"}, ("user_id",)
    ),
    "events": TableContract({"user_id": "id", "event": "text", "timestamp": "timestamp"}),
    "feedback": TableContract(
        {"feedback_id": "id", "created_at": "timestamp", "text": "text"},
        {"score": "score", "user_id": "id", "account_id": "id", "source": "text"},
        ("feedback_id",),
    ),
    "assignments": TableContract(
        {"user_id": "id", "experiment": "text", "variant": "text", "assigned_at": "timestamp"}
    ),
}


def conform(table: ibis.Table, name: str) -> tuple[ibis.Table, list[Check]]:
    """Check `table` against its contract and return it with standard types, plus notes.

    Ids become text, timestamps become UTC timestamps (text is parsed; timestamps without a
    timezone are read as UTC and noted), scores become numbers. Violations raise
    DataContractError naming the table, column, row count and an example value.
    """
    table, notes, _rows = conform_counted(table, name)
    return table, notes


def conform_counted(
    table: ibis.Table, name: str, known: KnownCounts | None = None
) -> tuple[ibis.Table, list[Check], int | None]:
    """`conform`, plus the number of rows of the returned table (None without a contract),
    counted in the same pass as the checks.

    `known` (row and null counts from a Parquet footer) replaces that pass when it answers
    every check: no conversion to verify, no score range, no uniqueness, and no missing
    values in a required column.
    """
    contract = CONTRACTS.get(name)
    if contract is None:
        return table, [], None
    missing = [c for c in contract.required if c not in table.columns]
    if missing:
        raise DataContractError(
            name,
            f"required column(s) {missing} missing; found {list(table.columns)} "
            "(map your names with 'columns:' in the parameter file)",
            column=missing[0],
        )
    kinds = contract.required | {c: k for c, k in contract.optional.items() if c in table.columns}
    notes: list[Check] = []
    converted = {}
    for column, kind in kinds.items():
        converted[column] = _convert(table, name, column, kind, notes)
    conformed = table.mutate(**converted)
    if (
        known is not None
        and known.rows > 0
        and not contract.unique
        and "score" not in kinds.values()
        and all(converted[c].type() == table[c].type() for c in kinds)
        and all(known.nulls.get(c) == 0 for c in contract.required)
    ):
        return conformed, notes, known.rows

    probe = table.select(
        **{f"o_{c}": table[c] for c in kinds}, **{f"c_{c}": v for c, v in converted.items()}
    )
    stats = {"rows": probe.count()}
    stats["complete"] = ibis.and_(*[probe[f"c_{c}"].notnull() for c in contract.required]).sum()
    for column, kind in kinds.items():
        original, value = probe[f"o_{column}"], probe[f"c_{column}"]
        if kind in ("timestamp", "score") and original.type() != value.type():
            stats[f"bad_{column}"] = (original.notnull() & value.isnull()).sum()
        if kind == "score":
            stats[f"range_{column}"] = ((value < 0) | (value > 10)).sum()
        if column in contract.required:
            stats[f"null_{column}"] = original.isnull().sum()
    for column in contract.unique:
        stats[f"distinct_{column}"] = probe[f"c_{column}"].nunique()
    counts = {k: int(v or 0) for k, v in probe.aggregate(**stats).execute().iloc[0].items()}

    if counts["rows"] == 0:
        raise DataContractError(name, "the table is empty", rows=0)
    for column, kind in kinds.items():
        if counts.get(f"bad_{column}"):
            what = (
                "unparseable timestamps" if kind == "timestamp" else "values that are not numbers"
            )
            bad = probe[f"o_{column}"].notnull() & probe[f"c_{column}"].isnull()
            raise DataContractError(
                name,
                what,
                column=column,
                rows=counts[f"bad_{column}"],
                example=_example(probe.filter(bad), f"o_{column}"),
            )
        if counts.get(f"range_{column}"):
            out = (conformed[column] < 0) | (conformed[column] > 10)
            raise DataContractError(
                name,
                "scores outside 0–10",
                column=column,
                rows=counts[f"range_{column}"],
                example=_example(conformed.filter(out), column),
            )
        if counts.get(f"null_{column}"):
            n = counts[f"null_{column}"]
            notes.append(
                Check(
                    f"{name}: missing {column}",
                    "warn",
                    f"{n:,} of {counts['rows']:,} rows have no {column}; they are left out",
                )
            )
    for column in contract.unique:
        valid = counts["rows"] - counts.get(f"null_{column}", 0)
        dupes = valid - counts[f"distinct_{column}"]
        if dupes:
            key = conformed[column]
            repeated = conformed.group_by(key).aggregate(n=ibis._.count()).filter(ibis._.n > 1)
            raise DataContractError(
                name,
                "duplicate ids (each must appear once)",
                column=column,
                rows=dupes,
                example=_example(repeated, column),
            )
    required_present = [conformed[c].notnull() for c in contract.required]
    return conformed.filter(*required_present), notes, counts["complete"]


def _convert(
    table: ibis.Table, name: str, column: str, kind: Kind, notes: list[Check]
) -> ibis.Value:
    col = table[column]
    dtype = col.type()
    if kind == "id":
        if not (dtype.is_string() or dtype.is_integer()):
            raise DataContractError(
                name, f"ids must be text or whole numbers, not {dtype}", column=column
            )
        return col.cast("string")
    if kind == "text":
        if not dtype.is_string():
            raise DataContractError(name, f"expected text, found {dtype}", column=column)
        return col
    if kind == "score":
        return col.cast("float64") if dtype.is_numeric() else col.try_cast("float64")
    if dtype.is_timestamp():
        if dtype.timezone is None:
            notes.append(
                Check(
                    f"{name}: {column} timezone",
                    "warn",
                    f"{column} has no timezone; read as UTC",
                )
            )
            return col.cast(UTC_TIMESTAMP)
        return col.cast(UTC_TIMESTAMP) if dtype.timezone != "UTC" else col
    if dtype.is_date():
        return col.cast(UTC_TIMESTAMP)
    if dtype.is_string():
        return col.try_cast(UTC_TIMESTAMP)
    raise DataContractError(name, f"expected a timestamp, found {dtype}", column=column)


def _example(table: ibis.Table, column: str) -> object:
    frame = table.select(column).limit(1).execute()
    if frame.empty:
        return None
    value = frame.iloc[0, 0]
    return value.item() if hasattr(value, "item") else value
