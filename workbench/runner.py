"""The runner: validate parameter files, execute notebooks with Papermill, publish atomically."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from workbench.errors import ParameterError
from workbench.notebook import CONTEXT_NAME, SCHEDULED_ENV
from workbench.parameters import (
    analysis_of,
    check_parameter_file,
    find_root,
    mask_secrets,
    read_parameter_file,
    redact,
    secret_values,
)
from workbench.readout import SUMMARY_SCHEMA, TitleBlock, readout_css

TMP_PREFIX = ".tmp-"


@dataclass
class RunOutcome:
    """What happened to one parameter file: status, where the readout is, and timings."""

    parameter_file: str
    analysis: str
    name: str
    status: str
    run_dir: str | None = None
    error: str | None = None
    headline: str = ""
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        """Wall time of the whole run."""
        return self.timings.get("total_s", 0.0)


def collect_parameter_files(paths: Iterable[str | Path]) -> list[Path]:
    """The parameter files named by `paths` (files, or folders searched for *.yaml / *.yml)."""
    files: list[Path] = []
    missing = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(
                f for f in p.rglob("*") if f.suffix in {".yaml", ".yml"} and f.is_file()
            )
        elif p.is_file():
            files.append(p)
        else:
            missing.append(f"{p}: no such file or folder")
    if missing:
        raise ParameterError(missing, source="command line")
    if not files:
        raise ParameterError(["no parameter files (*.yaml) found"], source="command line")
    return list(dict.fromkeys(f.resolve() for f in files))


def check_all(files: list[Path]) -> list[ParameterError]:
    """Validate every file; return all problems (empty when every file is valid)."""
    problems = []
    for f in files:
        try:
            check_parameter_file(f)
        except ParameterError as exc:
            problems.append(exc)
    return problems


def new_run_id(now: dt.datetime | None = None) -> str:
    """A sortable, unique run id: UTC time to the microsecond."""
    now = now or dt.datetime.now(dt.UTC)
    return now.strftime("%Y%m%dT%H%M%S") + f"{now.microsecond:06d}Z"


def run_parameter_file(parameter_file: str | Path, out: str | Path) -> RunOutcome:
    """Execute one readout into `out/<analysis>/<name>/<run_id>/`, never touching earlier runs."""
    from workbench.export import write_readout

    started = time.perf_counter()
    parameter_file = Path(parameter_file).resolve()
    analysis, name = analysis_of(parameter_file), parameter_file.stem
    raw = read_parameter_file(parameter_file)
    secrets = secret_values(raw)
    root = find_root(parameter_file)
    notebook = root / "notebooks" / f"{analysis}.ipynb"
    run_id = new_run_id()
    parent = Path(out).resolve() / analysis / name
    tmp = parent / f"{TMP_PREFIX}{run_id}"
    tmp.mkdir(parents=True)
    outcome = RunOutcome(str(parameter_file), analysis, name, "ok")
    context = {
        "parameter_file": str(parameter_file),
        "root": str(root),
        "run_dir": str(tmp),
        "run_id": run_id,
        "analysis": analysis,
        "name": name,
        # the keys the file gives: every other key takes its documented default, never the
        # sample value in the notebook's parameters cell
        "keys": sorted(raw),
    }
    executed = tmp / "notebook.ipynb"
    error: BaseException | None = None
    try:
        _execute(notebook, executed, {**injectable(raw), CONTEXT_NAME: context}, cwd=root)
    except Exception as exc:  # a failing notebook becomes a failed readout, not a crash
        error = exc
    t_exec = time.perf_counter()
    outcome.timings.update(_notebook_timings(executed, t_exec - started))
    # what the kernel wrote may quote a secret (a database error echoing a URL, the injected
    # parameters of a file with a literal password): scrub it before anything is exported
    _redact_files(tmp, secrets)

    summary_path = tmp / "summary.json"
    if error is None and not summary_path.exists():
        error = RuntimeError("the notebook finished without publishing summary.json")
    title = str(raw.get("title") or f"{analysis} / {name}")
    banner = None
    if error is not None:
        outcome.status, outcome.error = "failed", redact(plain_error(error), secrets)
        summary = failed_summary(analysis, name, title, raw, outcome.error, t_exec - started)
        summary_path.write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
        banner = failure_banner(title, analysis, outcome.error, summary["generated_at"])
    else:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        outcome.status, outcome.headline = summary["status"], summary.get("headline", "")
    try:
        if executed.exists():
            write_readout(executed, tmp / "readout.html", title=title, banner_html=banner)
        else:
            (tmp / "readout.html").write_text(
                standalone_page(title, banner or ""), encoding="utf-8"
            )
    except Exception as exc:  # export problems are reported as a failed run, with a plain page
        outcome.status = "failed"
        outcome.error = redact(f"export failed: {plain_error(exc)}", secrets)
        banner = failure_banner(title, analysis, outcome.error, summary["generated_at"])
        (tmp / "readout.html").write_text(standalone_page(title, banner), encoding="utf-8")
        summary.update(status="failed", headline=f"Run failed: {outcome.error}")
        summary_path.write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    _redact_files(tmp, secrets)
    final = parent / run_id
    os.replace(tmp, final)
    outcome.run_dir = str(final)
    outcome.timings["export_s"] = round(time.perf_counter() - t_exec, 3)
    outcome.timings["total_s"] = round(time.perf_counter() - started, 3)
    return outcome


def run_all(
    files: list[Path],
    out: str | Path,
    *,
    jobs: int = 1,
    progress: Callable[[str], None] | None = None,
) -> list[RunOutcome]:
    """Run every parameter file (validated beforehand), `jobs` at a time, then rebuild the index."""
    from workbench.index import write_index

    say = progress or (lambda line: print(line, file=sys.stderr, flush=True))
    os.environ[SCHEDULED_ENV] = "1"
    remove_stale_temporaries(out)
    outcomes: list[RunOutcome] = []
    total = len(files)
    for i, f in enumerate(files, 1):
        say(f"[{i}/{total}] queued  {analysis_of(f)}/{f.stem}")
    if jobs <= 1:
        for i, f in enumerate(files, 1):
            say(f"[{i}/{total}] running {analysis_of(f)}/{f.stem} …")
            outcomes.append(_guarded(f, out))
            say(_progress_line(i, total, outcomes[-1]))
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(_guarded, f, out): f for f in files}
            for done, future in enumerate(as_completed(futures), 1):
                outcomes.append(future.result())
                say(_progress_line(done, total, outcomes[-1]))
        order = {str(f): k for k, f in enumerate(files)}
        outcomes.sort(key=lambda o: order.get(o.parameter_file, 0))
    write_index(out)
    return outcomes


def outcome_table(outcomes: list[RunOutcome], out: str | Path) -> str:
    """The final table: readout, status, time and path."""
    rows = [("readout", "status", "time", "path")]
    for o in outcomes:
        where = os.path.relpath(o.run_dir, Path.cwd()) if o.run_dir else "-"
        rows.append((f"{o.analysis}/{o.name}", o.status, f"{o.duration_s:.1f}s", where))
    widths = [max(len(r[c]) for r in rows) for c in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    failed = [o for o in outcomes if o.status == "failed"]
    lines += [f"failed {o.analysis}/{o.name}: {o.error}" for o in failed]
    lines.append(f"index: {Path(out) / 'index.html'}")
    return "\n".join(lines)


def plain_error(exc: BaseException) -> str:
    """An error in plain words: a workbench error's own message, else its type and message."""
    from workbench.errors import WorkbenchError

    ename = getattr(exc, "ename", None)  # papermill's PapermillExecutionError
    if ename:
        evalue = str(getattr(exc, "evalue", "")).strip()
        return f"{ename}: {evalue}" if evalue else ename
    if isinstance(exc, WorkbenchError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}".strip()


def failed_summary(
    analysis: str, name: str, title: str, raw: dict[str, Any], error: str, duration_s: float
) -> dict[str, Any]:
    """summary.json of a run that failed."""
    from workbench import __version__
    from workbench.notebook import workbench_commit

    return {
        "schema": SUMMARY_SCHEMA,
        "analysis": analysis,
        "name": name,
        "title": title,
        "status": "failed",
        "headline": f"Run failed: {error.splitlines()[0] if error else 'unknown error'}",
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "data_window": {"start": None, "end": None},
        "key_numbers": [],
        "checks": [],
        "error": error,
        "parameters": mask_secrets(raw),
        "provenance": {
            "workbench_version": __version__,
            "git_commit": workbench_commit(),
            "engine": "duckdb",
            "inputs": [],
            "duration_s": round(duration_s, 3),
        },
        "results": {},
    }


def failure_banner(title: str, analysis: str, error: str, generated_at: str) -> str:
    """The top of a failed readout: what failed, in plain words, and where to look next."""
    block = TitleBlock(title, analysis, "failed", generated_at).to_html()
    return (
        f'{block}<div class="wb-readout wb-failure"><h2>This readout failed</h2>'
        f"<pre>{escape(error)}</pre><p>Nothing below replaces the previous good readout. "
        "The executed notebook (notebook.ipynb, beside this page) shows the failing cell; "
        "outputs that were produced before the failure follow.</p></div>"
    )


def standalone_page(title: str, body: str) -> str:
    """A minimal self-contained page (used when there is no notebook to export)."""
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f'<style>{readout_css()}</style></head><body style="max-width:1100px;margin:2rem auto">'
        f"{body}</body></html>"
    )


def injectable(raw: Any) -> Any:
    """Parameters as Papermill can inject them: YAML dates and times become ISO 8601 text."""
    if isinstance(raw, dict):
        return {k: injectable(v) for k, v in raw.items()}
    if isinstance(raw, list):
        return [injectable(v) for v in raw]
    if isinstance(raw, dt.date):  # datetime is a date too
        return raw.isoformat()
    return raw


def _execute(notebook: Path, output: Path, parameters: dict[str, Any], *, cwd: Path) -> None:
    import logging

    import papermill as pm

    logging.getLogger("papermill").setLevel(logging.ERROR)  # '_workbench' is injected on purpose
    pm.execute_notebook(
        str(notebook),
        str(output),
        parameters=parameters,
        cwd=str(cwd),
        progress_bar=False,
        log_output=False,
        kernel_name="python3",
    )


def _notebook_timings(executed: Path, wall_s: float) -> dict[str, float]:
    try:
        nb = json.loads(executed.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"execute_s": round(wall_s, 3)}
    cells = sum(
        (c.get("metadata", {}).get("papermill", {}).get("duration") or 0.0)
        for c in nb.get("cells", [])
    )
    return {"kernel_start_s": round(max(wall_s - cells, 0.0), 3), "execute_s": round(cells, 3)}


def _guarded(parameter_file: Path, out: str | Path) -> RunOutcome:
    try:
        return run_parameter_file(parameter_file, out)
    except Exception as exc:  # never lose the other readouts because one could not start
        try:
            secrets = secret_values(read_parameter_file(parameter_file))
        except Exception:  # noqa: BLE001 - an unreadable file holds no secret to scrub
            secrets = []
        return RunOutcome(
            str(parameter_file),
            parameter_file.parent.name,
            parameter_file.stem,
            "failed",
            error=redact(plain_error(exc) + "\n" + traceback.format_exc(limit=3), secrets),
        )


REDACTED_SUFFIXES = {".ipynb", ".json", ".html", ".csv", ".txt", ".md"}


def _redact_files(folder: Path, secrets: list[str]) -> None:
    """Replace every secret in the text files of a run folder by '***'."""
    if not secrets:
        return
    for path in folder.rglob("*"):
        if path.suffix not in REDACTED_SUFFIXES or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
        clean = redact(text, secrets)
        if clean != text:
            path.write_text(clean, encoding="utf-8", errors="surrogateescape")


def _progress_line(i: int, total: int, o: RunOutcome) -> str:
    mark = {"ok": "ok", "warning": "ok (warnings)", "failed": "FAILED"}.get(o.status, o.status)
    return f"[{i}/{total}] {mark:<13} {o.analysis}/{o.name} in {o.duration_s:.1f}s"


def remove_stale_temporaries(out: str | Path, older_than_s: float = 24 * 3600) -> int:
    """Delete temporary run folders left by killed runs, once they are a day old."""
    removed = 0
    for tmp in Path(out).glob(f"*/*/{TMP_PREFIX}*"):
        if time.time() - tmp.stat().st_mtime > older_than_s:
            shutil.rmtree(tmp, ignore_errors=True)
            removed += 1
    return removed
