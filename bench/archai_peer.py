"""Seconds per evaluated architecture: Microsoft Archai 1.0.0's LTS pipeline vs lts, in one run.

    .venv/bin/python bench/archai_peer.py [--n 60] [--seed 1] [--skip-archai] [--skip-lts]
        [--archai-python /work/archai-venv/bin/python] [--db /tmp/peer.db] [--no-host-lock]

Archai half: ``bench/archai_driver.py`` runs in Archai's own venv (it needs exactly archai==1.0.0,
torch==2.13.0, transformers==4.27.4, onnxruntime==1.15.1, numpy<2, plus opt_einsum; see the
driver), as Archai's LTS scripts do it: ``TransformerFlexSearchSpace("gpt2")``, objectives
non-embedding parameters (constraint 1e6..1e9), ONNX latency and ONNX memory, searched by
``EvolutionParetoSearch`` until ``--n`` architectures were evaluated. It reports its per-objective
times, its space's ranges and its latency settings as one JSON line.

lts half: lts's evolution search for the same ``--n`` evaluations, objectives proxy, latency and
memory measured for real on this CPU, in a temporary SQLite store, on a space built from the
ranges Archai reported (what cannot be matched is printed). Then a table: seconds per evaluated
architecture, Archai vs lts, their ratio, the per-objective split, and what "memory" means in each.

The Archai subprocess holds lts's host measuring lock (``lts.cost.hostlock``) while it runs, since
it times latency too: lts measurements elsewhere on this host wait for it, and it for them
(``--no-host-lock`` to skip).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lts.cost.hostlock import HostLock
from lts.objectives import Constraints
from lts.search import defaults
from lts.search.session import new_run, open_runner
from lts.space.config import config_from_json
from lts.space.counts import decoder_params
from lts.space.ranges import SearchSpace
from lts.store.db import Store

OBJECTIVES = "proxy,latency,memory"
DRIVER = Path(__file__).resolve().with_name("archai_driver.py")  # the driver runs in another cwd
DEFAULT_ARCHAI_PYTHON = "/work/archai-venv/bin/python"
# Archai's NonEmbeddingParamsProxy constraint in its LTS scripts: the lts run uses the same window.
PARAMS_WINDOW = (1_000_000, 1_000_000_000)

# TransformerFlexSearchSpace("gpt2") and TransformerFlexOnnxLatency defaults in Archai 1.0.0, used
# for the lts space when the Archai half is skipped (otherwise the ranges it reports are used).
ARCHAI_1_0_0_DEFAULTS: dict[str, Any] = {
    "space": {"n_layer": [1, 10], "d_model": list(range(128, 1024, 64)), "n_head": [2, 4, 8],
              "d_inner": list(range(128, 1024, 64)), "share_d_inner": True, "vocab_size": 10_000,
              "max_sequence_length": 1024},
    "latency": {"batch": 1, "seq_len": 192, "n_trials": 1, "threads": 1},
}


def run_archai(python: str, n: int, seed: int, use_lock: bool) -> dict[str, Any]:
    """Run the driver in Archai's venv; its last stdout line is the JSON result."""
    logs = Path(tempfile.mkdtemp(prefix="archai-peer-logs-"))
    cmd = [python, str(DRIVER), "--n", str(n), "--seed", str(seed)]
    lock = HostLock().hold() if use_lock else contextlib.nullcontext()
    with lock, open(logs / "stdout", "wb") as out, open(logs / "stderr", "wb") as err:
        # cwd: Archai writes archai.log into the working directory as it is imported
        proc = subprocess.run(cmd, stdout=out, stderr=err, cwd=logs, check=False)  # rc is reported below
    lines = (logs / "stdout").read_text(errors="replace").splitlines()
    result = next((json.loads(s) for s in reversed(lines) if s.startswith('{"n_evaluated"')), None)
    if proc.returncode or result is None:
        tail = (logs / "stderr").read_text(errors="replace").splitlines()[-15:]
        raise SystemExit(f"Archai driver failed (rc {proc.returncode}); logs in {logs}:\n" + "\n".join(tail))
    result["logs"] = str(logs)
    return result


def lts_space(archai: dict[str, Any]) -> tuple[SearchSpace, list[str]]:
    """The lts GPT-2 space closest to Archai's reported ranges, and what still differs."""
    a = archai["space"]
    lat = archai["latency"]
    spec = {
        "family": "gpt2", "name": "archai-gpt2",
        "n_layer": {"min": a["n_layer"][0], "max": a["n_layer"][1]},
        "d_model": a["d_model"], "n_head": a["n_head"], "d_inner": a["d_inner"],
        # Archai's GPT-2 embeds at d_model with one softmax: no adaptive clusters, div_val 1. lts
        # searches d_embed as its own gene (a positive integer, no "same as d_model" choice), so
        # it draws from the same widths as d_model; a mismatch adds an embedding projection.
        "d_embed": a["d_model"], "div_val": [1], "cutoffs": [],
        "vocab_size": a["vocab_size"],
        "tgt_len": lat["seq_len"],  # lts times a segment of tgt_len tokens, Archai seq_len tokens
        "tie_weight": True,  # Archai's share_weights=True ties the embedding and the softmax
    }
    diffs = [
        "d_embed: Archai = d_model always; lts samples it from the d_model widths independently",
        ("per layer: lts draws n_head and d_inner per layer; Archai shares both across layers"
         + ("" if a.get("share_d_inner", True) else " (n_head only: share_d_inner is off)")),
        f"positions: Archai n_positions={a['max_sequence_length']}, lts {lat['seq_len']} (tgt_len)",
        (f"latency: Archai = ONNX Runtime mean of n_trials={lat['n_trials']} run(s) of a use_past graph; "
         "lts = torch eager, median to a 95% CI stopping rule"),
        ("evolution: Archai init 10 random, then Pareto mutations+crossovers+5 random per iteration; "
         f"lts its defaults (population {defaults.POPULATION}, generation {defaults.GENERATION})"),
    ]
    return SearchSpace.from_dict(spec), diffs


def run_lts(space: SearchSpace, n: int, seed: int, archai: dict[str, Any], db: Path) -> dict[str, Any]:
    lat = archai["latency"]
    store = Store(db)
    run_id = new_run(store, space, "archai-peer-cpu", budget=n, strategy="evolution", seed=seed,
                     objectives=OBJECTIVES, constraints=Constraints(min_params=PARAMS_WINDOW[0], max_params=PARAMS_WINDOW[1]),
                     batch=lat["batch"], seq_len=lat["seq_len"], threads=lat["threads"])
    t0 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        runner = open_runner(store, run_id, stack)  # starts the measuring workers: counted
        runner.run_to_end()
    total = time.perf_counter() - t0
    rows = store.run_rows(run_id)
    # this run's measurements only (a reused --db may hold others); seconds = build + memory + timing
    measured = store.query(
        """SELECT COUNT(*) AS n, SUM(x.seconds) AS s FROM measurements x
           WHERE x.protocol = ? AND x.arch_id IN (SELECT arch_id FROM run_members WHERE run_id = ?)""",
        (store.run(run_id)["protocol"], run_id))[0]
    # The proxy is analytic and computed inside the runner; time it again the same way, per config.
    t1 = time.perf_counter()
    for r in rows:
        decoder_params(config_from_json(r["config_json"]))
    proxy_s = (time.perf_counter() - t1) / max(len(rows), 1)
    n_eval = len(rows)
    return {
        "n_evaluated": n_eval, "total_s": total, "per_arch_s": total / max(n_eval, 1),
        "n_measured": measured["n"], "measure_s_per_arch": (measured["s"] or 0.0) / max(n_eval, 1),
        "proxy_s_per_arch": proxy_s, "db": str(db), "run_id": run_id,
        "mean_peak_mb": _mean(r["peak_memory_mb"] for r in rows),
        "mean_latency_ms": _mean(r["latency_ms"] for r in rows),
    }


def _mean(values: Any) -> float | None:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def report(archai: dict[str, Any] | None, lts: dict[str, Any] | None) -> None:
    print("\nseconds per evaluated architecture")
    print(f"  {'':42s}{'Archai 1.0.0':>14s}{'lts':>10s}")
    a = archai["per_arch_s"] if archai else None
    b = lts["per_arch_s"] if lts else None

    def row(name: str, x: float | None, y: float | None) -> None:
        fx = f"{x:14.3f}" if x is not None else f"{'-':>14s}"
        fy = f"{y:10.3f}" if y is not None else f"{'-':>10s}"
        print(f"  {name:42s}{fx}{fy}")

    row(f"whole search (n={archai['n_evaluated'] if archai else lts['n_evaluated']})", a, b)
    ao = archai["objective_s_per_arch"] if archai else {}
    row("proxy (non-embedding params)", ao.get("non_embedding_params"), lts["proxy_s_per_arch"] if lts else None)
    row("latency", ao.get("onnx_latency"), None)
    row("memory", ao.get("onnx_memory"), None)
    row("latency+memory (lts: one pass)", (ao.get("onnx_latency", 0) + ao.get("onnx_memory", 0)) if archai else None,
        lts["measure_s_per_arch"] if lts else None)
    if archai and lts:
        overhead_a = a - sum(ao.values())
        overhead_b = b - lts["measure_s_per_arch"] - lts["proxy_s_per_arch"]
        row("rest: startup, search, building, saving", overhead_a, overhead_b)
        print(f"  ratio Archai/lts per architecture: {a / b:.2f}x")
    print("memory means: Archai = size of the optimised ONNX file (MiB), no model is run for it;"
          " lts = real peak RSS of weights + one forward (MiB), measured in a worker process")
    if archai:
        v = archai.get("objective_mean_value", {})
        print(f"  Archai mean ONNX file {v.get('onnx_memory', float('nan')):.1f} MiB, mean ONNX latency "
              f"{1000 * v.get('onnx_latency', float('nan')):.2f} ms")
    if lts and lts["mean_peak_mb"] is not None:
        print(f"  lts mean peak {lts['mean_peak_mb']:.1f} MiB, mean latency {lts['mean_latency_ms']:.2f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=60, help="evaluated architectures per half")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--skip-archai", action="store_true")
    ap.add_argument("--skip-lts", action="store_true")
    ap.add_argument("--archai-python", default=DEFAULT_ARCHAI_PYTHON)
    ap.add_argument("--db", default=None, help="lts store (default: a new temporary SQLite file)")
    ap.add_argument("--no-host-lock", action="store_true", help="run Archai without lts's host measuring lock")
    args = ap.parse_args()
    if args.n < 1:
        ap.error("--n must be at least 1")
    if args.skip_archai and args.skip_lts:
        ap.error("nothing to run: --skip-archai and --skip-lts together")

    archai = None
    if not args.skip_archai:
        print(f"Archai: {args.n} architectures with {args.archai_python} ...", flush=True)
        archai = run_archai(args.archai_python, args.n, args.seed, not args.no_host_lock)
        print("archai " + json.dumps(archai), flush=True)
    lts = None
    if not args.skip_lts:
        space, diffs = lts_space(archai or ARCHAI_1_0_0_DEFAULTS)
        print(f"lts: {args.n} architectures on {space.name} (from "
              f"{'the ranges Archai reported' if archai else 'Archai 1.0.0 defaults'}); differences:")
        for d in diffs:
            print(f"  - {d}")
        db = Path(args.db) if args.db else Path(tempfile.mkdtemp(prefix="lts-peer-")) / "peer.db"
        lts = run_lts(space, args.n, args.seed, archai or ARCHAI_1_0_0_DEFAULTS, db)
        print("lts " + json.dumps(lts), flush=True)
    report(archai, lts)


if __name__ == "__main__":
    sys.exit(main())
