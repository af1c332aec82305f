"""Wall time of the model-free ``lts`` commands, each in a fresh process, against a 0.5 s target.

    .venv/bin/python bench/cli_startup.py [--repeats 5]

Builds a small database in a temporary folder (one proxy-only search of 6 architectures, its bundle
and a configs file), then runs every command ``--repeats`` times and prints the median and max wall
time and median / 0.5 s. Baselines: ``python -c pass`` (the interpreter) and ``python -c "import
torch"`` (what each command paid when the CLI imported torch at start). No pass/fail: these machines
are shared and noisy; tests/test_packaging.py checks the cause (no heavy module imported) instead.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 0.5


def lts_command() -> list[str]:
    """The ``lts`` script beside this interpreter (what users run), else ``python -m lts.cli``."""
    script = Path(sys.executable).parent / "lts"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "lts.cli"]


def wall(cmd: list[str], cwd: Path, stdin: str | None = None) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, input=stdin, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
    return seconds


def setup(work: Path, lts: list[str]) -> str:
    """The database, bundle and configs the commands read; returns the run id."""
    def out(*argv: str) -> str:
        return subprocess.run([*lts, *argv], cwd=work, capture_output=True, text=True, check=True).stdout

    out("search", "--space", "gpt2", "--objectives", "proxy", "--budget", "6", "--db", "lts.db", "--no-progress")
    run_id = out("runs", "--db", "lts.db").splitlines()[1].split()[0]
    out("export-run", run_id, "-o", "bundle.json.gz", "--db", "lts.db")
    (work / "configs.jsonl").write_text(out("sample", "-n", "3"))
    return run_id


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    lts = lts_command()
    with tempfile.TemporaryDirectory(prefix="lts-startup-") as tmp:
        work = Path(tmp)
        run_id = setup(work, lts)
        cases: list[tuple[str, list[str]]] = [
            ("python -c pass", [sys.executable, "-c", "pass"]),
            ("python -c 'import torch'", [sys.executable, "-c", "import torch"]),
            ("lts --help", [*lts, "--help"]),
            ("lts runs", [*lts, "runs", "--db", "lts.db"]),
            ("lts frontier RUN", [*lts, "frontier", run_id, "--db", "lts.db"]),
            ("lts export-run RUN", [*lts, "export-run", run_id, "-o", "again.json.gz", "--db", "lts.db"]),
            ("lts import --help", [*lts, "import", "--help"]),
            ("lts sample", [*lts, "sample"]),
            ("lts proxy FILE", [*lts, "proxy", "configs.jsonl"]),
            ("lts reference params", [*lts, "reference", "params"]),
            ("lts team --help", [*lts, "team", "--help"]),
            ("lts space show gpt2", [*lts, "space", "show", "gpt2"]),
        ]
        print(f"{'command':28} {'median s':>9} {'max s':>7} {'median/0.5s':>12}   ({args.repeats} fresh processes each)")
        for name, cmd in cases:
            times = [wall(cmd, work) for _ in range(args.repeats)]
            med = statistics.median(times)
            print(f"{name:28} {med:9.3f} {max(times):7.3f} {med / TARGET_S:12.2f}")


if __name__ == "__main__":
    main()
