"""`workbench` command line: a thin layer over the runner, parameters, index and sample modules."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from workbench.errors import ParameterError, WorkbenchError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 1 a readout failed, 2 bad parameters/usage)."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except ParameterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except WorkbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED


def _run(args: argparse.Namespace) -> int:
    from workbench.runner import check_all, collect_parameter_files, outcome_table, run_all

    files = collect_parameter_files(args.paths)
    problems = check_all(files)
    if problems:
        for p in problems:
            print(f"error: {p}", file=sys.stderr)
        print(f"{len(problems)} invalid parameter file(s); nothing was run.", file=sys.stderr)
        return EXIT_USAGE
    outcomes = run_all(files, args.out, jobs=args.jobs)
    print(outcome_table(outcomes, args.out))
    return EXIT_FAILED if any(o.status == "failed" for o in outcomes) else EXIT_OK


def _check(args: argparse.Namespace) -> int:
    from workbench.runner import check_all, collect_parameter_files

    files = collect_parameter_files(args.paths)
    problems = check_all(files)
    for p in problems:
        print(f"error: {p}", file=sys.stderr)
    for f in files:
        if not any(p.source == str(f) for p in problems):
            print(f"ok: {f}")
    return EXIT_USAGE if problems else EXIT_OK


def _index(args: argparse.Namespace) -> int:
    from workbench.index import write_index

    print(write_index(args.out))
    return EXIT_OK


def _sample(args: argparse.Namespace) -> int:
    from workbench.sample import generate_sample

    manifest = generate_sample(args.out, args.users, feedback=args.feedback, seed=args.seed)
    for table, rows in manifest["rows"].items():
        print(f"{table:<12} {rows:>12,} rows")
    print(f"written to {args.out}")
    return EXIT_OK


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workbench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run readouts from parameter files or folders")
    run.add_argument("paths", nargs="+", type=Path)
    run.add_argument("--out", type=Path, default=Path("reports"))
    run.add_argument("--jobs", type=_positive, default=1, help="readouts run at once")
    run.set_defaults(handler=_run)

    check = sub.add_parser("check", help="validate parameter files only")
    check.add_argument("paths", nargs="+", type=Path)
    check.set_defaults(handler=_check)

    index = sub.add_parser("index", help="rebuild reports/index.html")
    index.add_argument("--out", type=Path, default=Path("reports"))
    index.set_defaults(handler=_index)

    sample = sub.add_parser("sample", help="generate the sample product data")
    sample.add_argument("--out", type=Path, default=Path("data/sample"))
    sample.add_argument("--users", type=_positive, default=5000)
    sample.add_argument(
        "--feedback",
        type=_positive,
        default=None,
        help="feedback items (default: in proportion to users)",
    )
    sample.add_argument("--seed", type=int, default=7)
    sample.set_defaults(handler=_sample)
    return parser


if __name__ == "__main__":
    sys.exit(main())
