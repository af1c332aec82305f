"""Run the test suite (or part of it) several times while CPU-bound processes load the machine.

    python bench/suite_under_load.py                       # the whole suite, 3 times, 4 busy loops
    python bench/suite_under_load.py --runs 5 --busy 4 -- tests/test_kill_resume.py

Prints, per run, the wall time, pytest's summary line and the load average, then how many runs
passed. A test that passes only on a quiet machine is a race to fix: this is how we find them.
The busy loops are plain Python processes spinning on one core each (no `stress` needed).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _spin() -> None:
    os.nice(0)
    x = 0
    while True:
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--busy", type=int, default=4, help="CPU-bound processes beside the suite")
    ap.add_argument("pytest_args", nargs="*", help="after --: what pytest runs (default: the whole suite)")
    args = ap.parse_args(argv)
    spinners = [mp.Process(target=_spin, daemon=True) for _ in range(args.busy)]
    for p in spinners:
        p.start()
    passed = 0
    try:
        time.sleep(2)
        for i in range(1, args.runs + 1):
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args.pytest_args],
                                  cwd=ROOT, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
            summary = lines[-1] if lines else "(no output)"
            load = os.getloadavg()
            print(f"run {i}: {wall / 60:.1f} min, exit {proc.returncode}, load {load[0]:.1f}/{load[1]:.1f}: {summary}",
                  flush=True)
            if proc.returncode == 0:
                passed += 1
            else:
                print("\n".join(ln for ln in lines if ln.startswith(("FAILED", "ERROR"))), flush=True)
    finally:
        for p in spinners:
            p.terminate()
    print(f"{passed} of {args.runs} runs passed with {args.busy} busy processes beside them")
    return 0 if passed == args.runs else 1


if __name__ == "__main__":
    sys.exit(main())
