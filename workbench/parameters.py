"""Parameter files: YAML loading, `${ENV}` secrets, per-analysis pydantic schemas, masking."""

from __future__ import annotations

import datetime as dt
import glob
import math
import os
import re
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from workbench.errors import ParameterError
from workbench.experiment_data import planned_variants_missing

ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
SECRET_KEY_PATTERN = re.compile(r"(pass(word)?|secret|token|api[_-]?key|credential)", re.I)
MASK = "***"
FILE_FORMATS = {".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".pq": "parquet"}
FILE_FORMATS |= {".json": "json", ".jsonl": "json", ".ndjson": "json"}


class SourceSpec(BaseModel):
    """Where one table comes from: a file or glob, a DuckDB file, a connection URL, or a frame."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    path: str | None = None
    format: str | None = None
    duckdb: str | None = None
    url: str | None = None
    table: str | None = None
    query: str | None = None
    frame: Any = Field(default=None, exclude=True, repr=False)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"path": value}
        if _is_frame(value):
            return {"frame": value}
        return value

    @model_validator(mode="after")
    def _one_kind(self, info: ValidationInfo) -> SourceSpec:
        kinds = [k for k in ("path", "duckdb", "url", "frame") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(
                "give exactly one of 'path' (CSV/Parquet/JSON file or glob), 'duckdb' "
                f"(database file), 'url' (connection URL) or a data frame; got {kinds or 'none'}"
            )
        if (self.duckdb or self.url) and not (self.table or self.query):
            raise ValueError("a 'duckdb' or 'url' source needs 'table' or 'query'")
        if self.path is not None:
            if self.format is None:
                self.format = FILE_FORMATS.get(Path(self.path.replace("*", "x")).suffix.lower())
            if self.format not in {"csv", "parquet", "json"}:
                raise ValueError(
                    f"cannot tell the format of {self.path!r}: set 'format' to csv, parquet or json"
                )
        root = (info.context or {}).get("root")
        for local in (self.path, self.duckdb):
            if root is not None and local is not None and not _exists(resolve_path(local, root)):
                raise ValueError(f"no file matches {local!r} (looked in {Path(root).resolve()})")
        return self

    @property
    def kind(self) -> str:
        """The kind of source: path, duckdb, url or frame."""
        return next(k for k in ("path", "duckdb", "url", "frame") if getattr(self, k) is not None)


class Window(BaseModel):
    """The data window: inclusive start and end dates (either may be open)."""

    model_config = ConfigDict(extra="forbid")

    start: dt.date | None = None
    end: dt.date | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.start and self.end and self.start > self.end:
            raise ValueError(f"start {self.start} is after end {self.end}")
        return self


class CommonParameters(BaseModel):
    """Keys every analysis accepts."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    analysis: ClassVar[str] = ""
    required_tables: ClassVar[tuple[str, ...]] = ()
    optional_tables: ClassVar[tuple[str, ...]] = ()

    title: str = Field(min_length=1)
    owner: str = ""
    question: str = ""
    sources: dict[str, SourceSpec]
    columns: dict[str, dict[str, str]] = Field(default_factory=dict)
    window: Window = Field(default_factory=Window)
    timezone: str = "UTC"
    segments: list[str] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown timezone {value!r} (use an IANA name such as 'Europe/Paris')"
            ) from None
        return value

    @field_validator("sources")
    @classmethod
    def _known_tables(cls, value: dict[str, SourceSpec]) -> dict[str, SourceSpec]:
        missing = [t for t in cls.required_tables if t not in value]
        allowed = set(cls.required_tables) | set(cls.optional_tables)
        unknown = [t for t in value if t not in allowed]
        problems = []
        if missing:
            problems.append(f"missing required table(s) {missing}")
        if unknown:
            problems.append(f"unknown table(s) {unknown}; this analysis reads {sorted(allowed)}")
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @model_validator(mode="after")
    def _columns_for_declared_tables(self) -> CommonParameters:
        unknown = [t for t in self.columns if t not in self.sources]
        if unknown:
            raise ValueError(f"'columns' maps table(s) {unknown} that are not in 'sources'")
        return self


class DataOverviewParameters(CommonParameters):
    """The data overview readout: row counts, date ranges, weekly activity, top events."""

    analysis: ClassVar[str] = "data_overview"
    required_tables: ClassVar[tuple[str, ...]] = ("users", "events")
    optional_tables: ClassVar[tuple[str, ...]] = ("assignments", "feedback")

    top_events: int = Field(default=10, ge=1, le=100)


class ExperimentMetric(BaseModel):
    """One experiment metric: what is measured per user, its role and how it is judged."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    type: Literal["conversion", "mean", "ratio"]
    events: list[str] = Field(min_length=1)
    value: str | None = None
    denominator_events: list[str] = Field(default_factory=list)
    denominator_value: str | None = None
    window_days: float | None = Field(default=14, gt=0)
    role: Literal["primary", "secondary", "guardrail"] = "primary"
    direction: Literal["increase", "decrease"] = "increase"
    margin: float | None = Field(default=None, ge=0)
    margin_type: Literal["relative", "absolute"] = "relative"
    covariate_days: float | None = Field(default=None, gt=0)
    winsorize: float | None = Field(default=None, gt=0, lt=1)
    target_effect: float | None = Field(default=None, gt=0)

    @field_validator("events", "denominator_events", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentMetric:
        problems = []
        if self.role == "guardrail" and self.margin is None:
            problems.append("a guardrail needs a non-inferiority 'margin' (e.g. 0.02 for 2%)")
        if self.role != "guardrail" and self.margin is not None:
            problems.append("only guardrails have a 'margin'")
        if self.type == "ratio" and not self.denominator_events:
            problems.append("a ratio metric needs 'denominator_events'")
        if self.type != "ratio" and (self.denominator_events or self.denominator_value):
            problems.append("only ratio metrics have a denominator")
        if self.type == "conversion" and self.value is not None:
            problems.append("a conversion counts users; it sums no 'value' property")
        if self.type == "conversion" and self.winsorize is not None:
            problems.append("conversions (0/1) are not winsorized")
        if self.type == "ratio" and self.covariate_days is not None:
            problems.append("CUPED covariates ('covariate_days') are not supported for ratios")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class ExperimentReadoutParameters(CommonParameters):
    """The experiment readout: each variant against control, with a ship decision."""

    analysis: ClassVar[str] = "experiment_readout"
    required_tables: ClassVar[tuple[str, ...]] = ("events",)
    optional_tables: ClassVar[tuple[str, ...]] = ("assignments",)

    experiment: str = Field(min_length=1)
    control: str = Field(min_length=1)
    variants: dict[str, float] = Field(min_length=2)
    metrics: list[ExperimentMetric] = Field(min_length=1)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    power: float = Field(default=0.8, gt=0, lt=1)
    correction: Literal["bh", "holm", "none"] = "bh"
    inference: Literal["fixed", "sequential"] = "fixed"
    planned_end: dt.date | None = None
    planned_users: int | None = Field(default=None, ge=2)
    target_effect: float = Field(default=0.05, gt=0)
    chance_to_beat: bool = False
    segment_top: int = Field(default=10, ge=1, le=50)
    time_view: Literal["primary", "all"] = "primary"

    @model_validator(mode="before")
    @classmethod
    def _exposure_source(cls, value: Any) -> Any:
        """`exposure` is the assignments source: another way to write `sources.assignments`."""
        if not isinstance(value, dict) or value.get("exposure") is None:
            if isinstance(value, dict):
                value = {k: v for k, v in value.items() if k != "exposure"}
            return value
        value = dict(value)
        exposure = value.pop("exposure")
        sources = value.get("sources")
        if isinstance(sources, dict):
            if "assignments" in sources:
                raise ValueError("give the assignments once: 'exposure' or sources.assignments")
            value["sources"] = {**sources, "assignments": exposure}
        return value

    @field_validator("variants")
    @classmethod
    def _planned_split(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {k: v for k, v in value.items() if not v > 0}
        if bad:
            raise ValueError(f"planned traffic shares must be positive, got {bad}")
        total = sum(value.values())
        if not (math.isclose(total, 1, abs_tol=1e-6) or math.isclose(total, 100, abs_tol=1e-4)):
            raise ValueError(f"planned traffic shares must sum to 1 (or 100), got {total:g}")
        return {k: v / total for k, v in value.items()}

    @field_validator("metrics")
    @classmethod
    def _unique_metrics(cls, value: list[ExperimentMetric]) -> list[ExperimentMetric]:
        names = [m.name for m in value]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"metric names must be unique; repeated: {repeated}")
        if not any(m.role == "primary" for m in value):
            raise ValueError("name at least one metric with role 'primary'")
        return value

    @model_validator(mode="after")
    def _design(self, info: ValidationInfo) -> ExperimentReadoutParameters:
        problems = []
        if self.control not in self.variants:
            problems.append(
                f"control {self.control!r} is not one of the variants {sorted(self.variants)}"
            )
        if "assignments" not in self.sources:
            problems.append(
                "no assignments: set 'exposure' (the assignments source) or sources.assignments"
            )
        if self.inference == "sequential" and self.planned_users is None:
            problems.append(
                "inference 'sequential' needs 'planned_users' (the planned number of assigned "
                "users, fixed before the experiment starts)"
            )
        if not problems:
            root = (info.context or {}).get("root")
            problems += _unknown_variants(self, root)
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _unknown_variants(params: ExperimentReadoutParameters, root: Path | None) -> list[str]:
    """Planned variants with no assignment in a local file source (cheap check before a kernel)."""
    spec = params.sources["assignments"]
    if root is None or spec.path is None:
        return []
    mapping = params.columns.get("assignments", {})
    return planned_variants_missing(
        resolve_path(spec.path, root),
        spec.format,
        params.experiment,
        list(params.variants),
        mapping,
    )


WEEKDAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class CohortAdoptionParameters(CommonParameters):
    """The cohort adoption readout: retention, feature adoption, stickiness, lifecycle."""

    analysis: ClassVar[str] = "cohort_adoption"
    required_tables: ClassVar[tuple[str, ...]] = ("users", "events")

    unit: Literal["user", "account"] = "user"
    cohort_by: Literal["signup", "first_activity"] = "signup"
    period: Literal["day", "week", "month"] = "week"
    week_start: str = "monday"
    periods: int = Field(default=12, ge=1, le=366)
    activity: str | list[str] | None = None
    retention: Literal["on", "on_or_after"] = "on"
    min_events: int = Field(default=1, ge=1)
    features: dict[str, str | list[str]] = Field(default_factory=dict)
    adoption_window_days: int = Field(default=14, ge=1, le=366)
    as_of: dt.date | dt.datetime | None = None
    compare_at: list[int] = Field(default_factory=lambda: [1, 4])
    correction: Literal["holm", "bh"] = "holm"
    min_cohort_size: int = Field(default=30, ge=1)

    @field_validator("week_start")
    @classmethod
    def _weekday(cls, value: str) -> str:
        key = value.strip().lower()
        for name in WEEKDAY_NAMES:
            if key in (name, name[:3]):
                return name
        raise ValueError("must be a weekday name (monday … sunday)")

    @field_validator("activity")
    @classmethod
    def _activity_events(cls, value: str | list[str] | None) -> str | list[str] | None:
        if value is not None and not _event_names(value):
            raise ValueError("give an event name or a non-empty list of event names")
        return value

    @field_validator("features")
    @classmethod
    def _feature_events(cls, value: dict[str, str | list[str]]) -> dict[str, str | list[str]]:
        bad = [name for name, events in value.items() if not _event_names(events)]
        if bad:
            raise ValueError(f"feature(s) {bad} need an event name or a non-empty list of names")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> CohortAdoptionParameters:
        problems = [
            f"compare_at: {n} is outside 1…periods ({self.periods})"
            for n in self.compare_at
            if not 1 <= n <= self.periods
        ]
        if self.as_of and self.window.end:
            problems.append("give either as_of or window.end (the end of observation), not both")
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _event_names(events: str | list[str]) -> bool:
    names = [events] if isinstance(events, str) else events
    return bool(names) and all(name.strip() for name in names)


class CodebookEntry(BaseModel):
    """A known feedback theme: a name, a readable label, a description and example phrases."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    label: str = ""
    description: str = ""
    examples: list[str] = Field(default_factory=list)
    keywords: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _has_words(self) -> CodebookEntry:
        if not any(t.strip() for t in [self.description, *self.examples, *self.keywords]):
            raise ValueError(f"theme {self.name!r} needs a description, examples or keywords")
        return self


class FeedbackThemingParameters(CommonParameters):
    """The feedback theming readout: codebook and discovered themes, trends, sentiment, NPS."""

    analysis: ClassVar[str] = "feedback_theming"
    required_tables: ClassVar[tuple[str, ...]] = ("feedback",)

    codebook: list[CodebookEntry] = Field(default_factory=list)
    discover: int | str = "auto"
    engine: str = "auto"
    embedding_model: str | None = None
    period: str = "week"
    baseline_periods: int = Field(default=8, ge=1, le=104)
    recent_periods: int = Field(default=1, ge=1, le=52)
    min_theme_size: int = Field(default=10, ge=1)
    quotes_per_theme: int = Field(default=3, ge=0, le=20)
    redact: bool = True
    seed: int = 0

    @field_validator("codebook", mode="before")
    @classmethod
    def _read_codebook(cls, value: Any, info: ValidationInfo) -> Any:
        """A codebook given as the path of a YAML file is read from that file."""
        if value is None:
            return []
        if not isinstance(value, str):
            return value
        root = (info.context or {}).get("root") or Path.cwd()
        path = resolve_path(value, root)
        if not path.is_file():
            raise ValueError(f"no codebook file {value!r} (looked in {Path(root).resolve()})")
        try:
            raw = read_parameter_file(path)
        except ParameterError as error:
            raise ValueError(f"codebook file {value!r}: {'; '.join(error.problems)}") from None
        entries = raw.get("codebook")
        if not isinstance(entries, list):
            raise ValueError(f"codebook file {value!r} must hold a list of themes under 'codebook'")
        return entries

    @field_validator("codebook", mode="after")
    @classmethod
    def _unique_names(cls, value: list[CodebookEntry]) -> list[CodebookEntry]:
        names = [e.name.strip().lower() for e in value]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"codebook theme name(s) {twice} appear more than once")
        return value

    @field_validator("discover")
    @classmethod
    def _discover(cls, value: int | str) -> int | str:
        if isinstance(value, str) and value.strip().lower() != "auto":
            raise ValueError("must be a whole number of themes (0 for none) or 'auto'")
        if isinstance(value, int) and not 0 <= value <= 200:
            raise ValueError("must be between 0 and 200, or 'auto'")
        return value if isinstance(value, int) else "auto"

    @field_validator("engine")
    @classmethod
    def _engine(cls, value: str) -> str:
        if value not in {"tfidf", "embeddings", "auto"}:
            raise ValueError("must be 'tfidf', 'embeddings' or 'auto'")
        return value

    @field_validator("period")
    @classmethod
    def _period(cls, value: str) -> str:
        if value not in {"day", "week", "month"}:
            raise ValueError("must be 'day', 'week' or 'month'")
        return value

    def codebook_themes(self) -> list[dict[str, Any]]:
        """The codebook as plain mappings (read from its file when one was named)."""
        return [e.model_dump() for e in self.codebook]


SCHEMAS: dict[str, type[CommonParameters]] = {
    "data_overview": DataOverviewParameters,
    "experiment_readout": ExperimentReadoutParameters,
    "cohort_adoption": CohortAdoptionParameters,
    "feedback_theming": FeedbackThemingParameters,
}


def resolve_path(path: str | Path, root: str | Path) -> Path:
    """Resolve a path from a parameter file against the workspace root (absolute paths stay)."""
    p = Path(os.path.expanduser(str(path)))
    return p if p.is_absolute() else Path(root) / p


def find_root(start: str | Path) -> Path:
    """The workspace root: the nearest folder at or above `start` that holds `parameters/`."""
    start = Path(start).resolve()
    here = start if start.is_dir() else start.parent
    for folder in (here, *here.parents):
        if (folder / "parameters").is_dir():
            return folder
    return Path.cwd()


def expand_secrets(raw: Any, *, key_path: str = "") -> tuple[Any, list[str]]:
    """Replace `${VAR}` with environment values; return the expanded value and missing vars."""
    problems: list[str] = []
    if isinstance(raw, dict):
        out = {}
        for k, v in raw.items():
            out[k], sub = expand_secrets(v, key_path=f"{key_path}.{k}" if key_path else str(k))
            problems += sub
        return out, problems
    if isinstance(raw, list):
        out_list = []
        for i, v in enumerate(raw):
            value, sub = expand_secrets(v, key_path=f"{key_path}[{i}]")
            out_list.append(value)
            problems += sub
        return out_list, problems
    if isinstance(raw, str):
        for name in ENV_PATTERN.findall(raw):
            if name not in os.environ:
                problems.append(f"{key_path}: environment variable {name} is not set")
        return ENV_PATTERN.sub(lambda m: os.environ.get(m.group(1), ""), raw), problems
    return raw, problems


def mask_secrets(raw: Any, *, key: str = "") -> Any:
    """A copy safe to show: secret-looking keys and URL passwords become '***'."""
    if isinstance(raw, dict):
        return {k: mask_secrets(v, key=str(k)) for k, v in raw.items()}
    if isinstance(raw, list):
        return [mask_secrets(v, key=key) for v in raw]
    if _is_frame(raw):
        return f"<data frame: {len(raw):,} rows>"
    if isinstance(raw, str):
        if SECRET_KEY_PATTERN.search(key) and raw:
            return MASK
        return mask_url(raw)
    if isinstance(raw, dt.date):
        return raw.isoformat()
    return raw


def mask_url(text: str) -> str:
    """Hide the secrets in a connection URL: the password (`scheme://user:secret@host` →
    `user:***`) and query values under secret-looking keys (`?password=…`, `&token=…`).
    Everything else stays as written."""
    if "://" not in text:
        return text
    head, sep, query = text.partition("?")
    password = _url_password(head)
    if password is not None:
        head = head.replace(f":{password}@", f":{MASK}@", 1)
    return head + sep + _mask_query(query) if sep else head


_URL_PASSWORD = re.compile(r"://[^:/@\s]*:([^@\s/]*)@")
_QUERY_PAIR = re.compile(r"(^|[&;])([^=&;#]*)=([^&;#]*)")


def _url_password(url: str) -> str | None:
    """The password of a URL as written, or None; a URL urllib cannot parse is searched for
    `://user:password@`."""
    try:
        return urlsplit(url).password
    except ValueError:
        match = _URL_PASSWORD.search(url)
        return match[1] if match else None


def _mask_query(query: str) -> str:
    return _QUERY_PAIR.sub(
        lambda m: f"{m[1]}{m[2]}={MASK}" if SECRET_KEY_PATTERN.search(m[2]) and m[3] else m[0],
        query,
    )


def secret_values(raw: Any, *, key: str = "") -> list[str]:
    """Every secret a parameter mapping holds, longest first, to scrub from text that is shown:
    the value of each environment variable it names (`${VAR}`, whatever the key: secrets come
    from the environment), each value under a secret-looking key, and the passwords and secret
    query values of connection URLs (all after expansion)."""
    found: set[str] = set()
    if isinstance(raw, dict):
        for k, v in raw.items():
            found.update(secret_values(v, key=str(k)))
    elif isinstance(raw, list):
        for v in raw:
            found.update(secret_values(v, key=key))
    elif isinstance(raw, str):
        found.update(os.environ.get(name, "") for name in ENV_PATTERN.findall(raw))
        text = ENV_PATTERN.sub(lambda m: os.environ.get(m.group(1), ""), raw)
        if SECRET_KEY_PATTERN.search(key):
            found.add(text)
        if "://" in text:
            found.update(_url_secrets(text))
    elif (
        isinstance(raw, int | float)
        and not isinstance(raw, bool)
        and SECRET_KEY_PATTERN.search(key)
    ):
        found.add(str(raw))  # a numeric password (`password: 123456`)
    return sorted((s for s in found if s.strip()), key=lambda s: (-len(s), s))


def _url_secrets(url: str) -> set[str]:
    """A URL's password and secret query values, as written and percent-decoded."""
    from urllib.parse import unquote

    head, _, query = url.partition("?")
    found = {m[3] for m in _QUERY_PAIR.finditer(query) if SECRET_KEY_PATTERN.search(m[2])}
    password = _url_password(head)
    if password:
        found.add(password)
    return found | {unquote(s) for s in found}


def redact(text: str, secrets: list[str]) -> str:
    """`text` with every secret replaced by '***', also where it appears JSON-, HTML- or
    URL-encoded. A secret under 4 characters is replaced only where it stands alone (not inside
    a longer word), so a short value does not garble the message around it."""
    import html
    import json
    from urllib.parse import quote

    for secret in secrets:
        forms = {
            secret,
            json.dumps(secret)[1:-1],
            json.dumps(secret, ensure_ascii=False)[1:-1],
            html.escape(secret),
            html.escape(secret, quote=False),
            quote(secret, safe=""),
        }
        for form in sorted(forms, key=lambda f: (-len(f), f)):
            if len(form) >= 4:
                text = text.replace(form, MASK)
            elif form:
                text = re.sub(rf"(?<![\w]){re.escape(form)}(?![\w])", MASK, text)
    return text


def read_parameter_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML parameter file into a mapping, with a clear error when it is malformed."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ParameterError([f"cannot read the file: {exc.strerror}"], source=str(path)) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ParameterError([f"{where}malformed YAML ({problem})"], source=str(path)) from None
    if raw is None:
        raise ParameterError(["the file is empty"], source=str(path))
    if not isinstance(raw, dict):
        raise ParameterError(
            [f"the top level must be a mapping of keys, not a {type(raw).__name__}"],
            source=str(path),
        )
    return raw


def analysis_of(path: str | Path) -> str:
    """The analysis of a parameter file: its folder name (`parameters/<analysis>/x.yaml`)."""
    analysis = Path(path).resolve().parent.name
    if analysis not in SCHEMAS:
        raise ParameterError(
            [f"folder '{analysis}' is not an analysis; use one of {sorted(SCHEMAS)}"],
            source=str(path),
        )
    return analysis


def validate_parameters(
    analysis: str, raw: dict[str, Any], *, root: str | Path, source: str = "parameters"
) -> CommonParameters:
    """Validate raw parameters for an analysis; raise ParameterError listing every problem."""
    schema = SCHEMAS.get(analysis)
    if schema is None:
        raise ParameterError([f"unknown analysis {analysis!r}; known: {sorted(SCHEMAS)}"], source)
    bad_keys = [k for k in raw if not isinstance(k, str)]
    if bad_keys:
        raise ParameterError([f"keys must be text, got {bad_keys}"], source)
    expanded, problems = expand_secrets(raw)
    try:
        params = schema.model_validate(expanded, context={"root": Path(root)})
    except ValidationError as exc:
        problems += [_describe(err) for err in exc.errors()]
    if problems:
        raise ParameterError(problems, source)
    return params


def check_parameter_file(path: str | Path) -> CommonParameters:
    """Read and validate one parameter file, resolving paths against its workspace root."""
    raw = read_parameter_file(path)
    return validate_parameters(analysis_of(path), raw, root=find_root(path), source=str(path))


def _describe(err: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in err["loc"] if p not in ("function-after", "function-before"))
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    elif err["type"] == "missing":
        msg = "required key is missing"
    value = err.get("input")
    shown = (
        ""
        if err["type"] in {"missing", "extra_forbidden"} or isinstance(value, dict)
        else (f" (got {mask_secrets(value, key=loc)!r})")
    )
    return f"{loc or '(top level)'}: {msg}{shown}"


def _exists(path: Path) -> bool:
    return bool(glob.glob(str(path))) if glob.has_magic(str(path)) else path.exists()


def _is_frame(value: Any) -> bool:
    return type(value).__name__ == "DataFrame" and hasattr(value, "columns")
