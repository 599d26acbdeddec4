"""Measure the main job: sample data, then every readout, with per-readout timing and HTML size.

Usage: python benchmarks/bench_readouts.py [--jobs 2] [--users 5000]
Prints a table; numbers go into benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--users", type=int, default=5000)
    args = parser.parse_args()

    from workbench.runner import collect_parameter_files, run_all
    from workbench.sample import generate_sample

    with tempfile.TemporaryDirectory(prefix="wb-bench-") as tmp:
        t0 = time.perf_counter()
        generate_sample(REPO / "data" / "sample", args.users)
        t_sample = time.perf_counter() - t0
        files = collect_parameter_files([REPO / "parameters"])
        t1 = time.perf_counter()
        outcomes = run_all(files, Path(tmp) / "reports", jobs=args.jobs, progress=lambda _: None)
        t_run = time.perf_counter() - t1

        print(
            f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}; "
            f"jobs={args.jobs}; sample users={args.users:,}"
        )
        print(
            f"sample data: {t_sample:.1f} s; all readouts: {t_run:.1f} s; "
            f"main job (sample + readouts): {t_sample + t_run:.1f} s"
        )
        header = (
            "readout",
            "status",
            "kernel start s",
            "execute s",
            "export s",
            "total s",
            "HTML MB",
        )
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for o in outcomes:
            size = Path(o.run_dir, "readout.html").stat().st_size / 1e6 if o.run_dir else 0.0
            t = o.timings
            print(
                f"| {o.analysis}/{o.name} | {o.status} | {t.get('kernel_start_s', 0):.1f} | "
                f"{t.get('execute_s', 0):.1f} | {t.get('export_s', 0):.1f} | "
                f"{t.get('total_s', 0):.1f} | {size:.2f} |"
            )
    return 0 if all(o.status != "failed" for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
