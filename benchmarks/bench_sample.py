"""Time and peak memory of generating the sample dataset at scale.

    python benchmarks/bench_sample.py --users 1000000 --out /tmp/bench_sample

Prints users, events, rows per table, seconds and the process's peak resident memory.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

from workbench.sample import generate_sample


def main(argv: list[str] | None = None) -> int:
    """Generate the sample once with the given size and print a small results table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument(
        "--feedback",
        type=int,
        default=None,
        help="feedback items (default: the generator's default for --users)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench_sample"))
    args = parser.parse_args(argv)

    started = time.perf_counter()
    manifest = generate_sample(args.out, args.users, feedback=args.feedback, seed=args.seed)
    seconds = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    size_mib = sum(p.stat().st_size for p in args.out.iterdir() if p.is_file()) / 2**20

    rows = [("users", f"{args.users:,}"), ("events", f"{manifest['rows']['events']:,}")]
    rows += [(f"rows: {table}", f"{count:,}") for table, count in manifest["rows"].items()]
    rows += [
        ("seconds", f"{seconds:,.1f}"),
        ("peak RSS (MiB)", f"{peak_mib:,.0f}"),
        ("output size (MiB)", f"{size_mib:,.1f}"),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"{'measure':<{width}}  value")
    for name, value in rows:
        print(f"{name:<{width}}  {value:>14}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
