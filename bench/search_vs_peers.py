"""Our search against the samplers a user would pick instead (Optuna), at equal evaluations and device-seconds.

    .venv/bin/python bench/search_vs_peers.py [--db results/bench/peers.db] [--pool 200] [--budget 200]
        [--seeds 0 1 2] [--strategies evolution evolution+surrogate random optuna-nsga2 optuna-tpe optuna-gp]
        [--gp-budget 40] [--gp-seeds 0] [--real-budget 100] [--real-seed 0] [--skip-real]

Every strategy searches the default GPT-2 space for (decoder params, latency, peak memory), one
thread, batch 1, the space's 192 tokens, through lts's runner (same protocol, same first
``population`` = 20 random members for every strategy but the surrogate-assisted one, which uses
its default of 10). ``evolution+surrogate`` is ``lts search --surrogate --surrogate-inner 10
--surrogate-pool 10`` with a cold start (its surrogate learns from its own run only, as the peers do).

1. Pool: ``--pool`` random architectures measured for real on this machine (reused from ``--db``).
2. **Recorded device** (labelled ``recorded`` in every row): a cost surrogate per objective fitted
   on the pool stands in for the device. A candidate's latency / memory is the surrogate's prediction
   times a per-architecture log-normal residual whose spread is the surrogate's held-out error on
   the pool (so the recorded device is as hard to predict as the real one), and each measurement
   costs the pool's mean seconds per measurement. Every strategy x seed runs ``--budget``
   evaluations (GPSampler: ``--gp-budget`` x ``--gp-seeds``: it costs seconds per proposal).
3. **Real device**: every strategy, one seed, ``--real-budget`` evaluations (GPSampler: at most
   ``--gp-budget``), measured for real, to confirm the ranking at one budget.

Hypervolume uses one reference box per mode (lts.search.runner.common_scales over all its runs).
Device-seconds are the measurement time of the architectures a run evaluated (cached or not).
Prints tables (mean +- sd over seeds) and writes ``results/bench/search_vs_peers.html`` (plotly).
No pass/fail: the machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import random
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import surrogate as surrogate_bench  # noqa: E402  (bench/surrogate.py: the measured pool, HV traces)

from lts.cost.protocol import Protocol  # noqa: E402
from lts.search.runner import SearchRunner, common_scales, create_run, member_rows  # noqa: E402
from lts.search.session import plan_run  # noqa: E402
from lts.space.config import Config  # noqa: E402
from lts.space.ranges import SearchSpace  # noqa: E402
from lts.store.db import Store  # noqa: E402
from lts.surrogate.assist import SurrogateSettings  # noqa: E402
from lts.surrogate.data import measured  # noqa: E402
from lts.surrogate.features import Shape, matrix  # noqa: E402
from lts.surrogate.model import fit_best  # noqa: E402

OBJECTIVES = surrogate_bench.OBJECTIVES
PROTOCOL = surrogate_bench.PROTOCOL
CHECKPOINTS = (25, 50, 100, 200)
ASSISTED = "evolution+surrogate"
OURS = ("evolution", ASSISTED)
ASSISTED_SETTINGS = {"inner_generations": 10, "pool_factor": 10}  # lts search --surrogate-inner 10 --surrogate-pool 10
PEERS = ("optuna-nsga2", "optuna-tpe", "optuna-gp")


def strategy_kwargs(name: str) -> dict[str, Any]:
    if name == ASSISTED:
        # a cold start (the run's own measurements only), as the peers get: trained on the device's
        # whole history the screen would learn from the other strategies' runs in this database.
        # ASSISTED_SETTINGS: the best of the settings tried on the recorded device (README)
        return {"strategy": "evolution", "surrogate": SurrogateSettings(train_on="run", **ASSISTED_SETTINGS),
                "population": 10}
    return {"strategy": name, "surrogate": None, "population": 20}


class RecordedDevice:
    """Latency and memory from surrogates fitted on real measurements, with held-out-sized residuals."""

    def __init__(self, store: Store, device_id: str, n_test: int = 50) -> None:
        self.shape = Shape.from_protocol(PROTOCOL)
        self.models, self.sigma, self.seconds = {}, {}, 0.0
        for objective, column in (("latency", "latency_ms"), ("memory", "peak_memory_mb")):
            data = measured(store, device_id, PROTOCOL, objective)
            idx = np.random.default_rng(0).permutation(len(data))
            test, train = data.subset(idx[:n_test]), data.subset(idx[n_test:])
            held, _ = fit_best(train.X, train.y, seed=0)
            pred, _ = held.predict(test.X)
            self.sigma[column] = float(np.std(np.log(pred / test.y)))
            self.models[column], _ = fit_best(data.X, data.y, seed=0)
            self.seconds = float(np.mean(data.seconds))
        self.n_pool = len(data)

    def __call__(self, cfg: Config) -> dict[str, Any]:
        X = matrix([cfg], self.shape)
        out: dict[str, Any] = {"latency_cv": 0.0, "repeats": 0, "infeasible": None, "seconds": self.seconds}
        for column, model in self.models.items():
            mean, _ = model.predict(X)
            # one fixed residual per (architecture, objective): a re-measurement gives the same value
            rng = random.Random(hashlib.sha256(f"{cfg.arch_id}:{column}".encode()).digest())
            out[column] = float(mean[0]) * float(np.exp(rng.gauss(0.0, self.sigma[column])))
        return out


def recorded_device_record(store: Store, device_id: str) -> dict[str, Any]:
    real = next(d for d in store.devices() if d["device_id"] == device_id)
    rec = {k: real[k] for k in ("kind", "cpu_model", "cores", "ram_gb", "gpu", "torch_version", "threads") if k in real}
    rec.update(device_id=hashlib.sha256(f"recorded:{device_id}".encode()).hexdigest()[:16],
               name=f"{real['name']} (recorded)")
    return rec


def recorded_run(store: Store, device: dict[str, Any], measure: Callable[[Config], dict[str, Any]],
                 name: str, budget: int, seed: int) -> str:
    plan = plan_run(SearchSpace.default("gpt2"), device["name"], budget=budget, seed=seed,
                    objectives=",".join(OBJECTIVES), **strategy_kwargs(name))
    protocol: Protocol = plan.protocol
    run_id = create_run(store, plan.settings, device, protocol.key, state={"protocol": protocol.to_dict()})
    SearchRunner(store, run_id, measure=measure).run_to_end()
    return run_id


def find_run(store: Store, name: str, budget: int, seed: int, device_id: str) -> str | None:
    kw = strategy_kwargs(name)
    for r in store.runs():
        state = json.loads(r["settings_json"] or "{}")
        if (r["strategy"] == kw["strategy"] and r["seed"] == seed and r["budget"] == budget
                and r["device_id"] == device_id and r["status"] == "finished"
                and (SurrogateSettings(**state["surrogate"]) if state.get("surrogate") else None) == kw["surrogate"]
                and state.get("evolution", {}).get("population") == kw["population"]):
            return r["run_id"]
    return None


def traces(store: Store, run_ids: dict[tuple[str, int], str]) -> dict[tuple[str, int], tuple[np.ndarray, np.ndarray]]:
    rows = {k: member_rows(store, rid) for k, rid in run_ids.items()}
    scales = common_scales(list(rows.values()), OBJECTIVES, SearchSpace.default("gpt2"))
    return {k: surrogate_bench.hv_trace(store, rid, scales) for k, rid in run_ids.items()}


def at(trace: np.ndarray, k: int) -> float | None:
    return float(trace[k - 1]) if len(trace) >= k else None


def table(title: str, names: list[str], tr: dict, seconds: dict[tuple[str, int], float]) -> dict[str, list[float]]:
    print(f"\n{title}")
    checkpoints = [k for k in CHECKPOINTS if any(len(h) >= k for _, h in tr.values())]
    print("| strategy | seeds | " + " | ".join(f"HV@{k}" for k in checkpoints)
          + " | proposal s / eval | device-s / eval |")
    print("| --- | --- | " + " | ".join("---" for _ in checkpoints) + " | --- | --- |")
    means: dict[str, list[float]] = {}
    for name in names:
        keys = [k for k in tr if k[0] == name]
        if not keys:
            continue
        cells = []
        for k in checkpoints:
            vals = [v for v in (at(tr[key][1], k) for key in keys) if v is not None]
            means.setdefault(name, []).append(statistics.mean(vals) if vals else float("nan"))
            cells.append(f"{statistics.mean(vals):.4f} +- {statistics.pstdev(vals):.4f}" if vals else "-")
        n_eval = sum(len(tr[key][1]) for key in keys)
        dev = sum(float(tr[key][0][-1]) for key in keys)
        prop = sum(seconds[key] for key in keys)
        print(f"| {name} | {len(keys)} | " + " | ".join(cells) + f" | {prop / n_eval:.3f} | {dev / n_eval:.2f} |")
    best_peer = {i: max((means[p][i] for p in PEERS if p in means and not np.isnan(means[p][i])), default=None)
                 for i in range(len(checkpoints))}
    for ours in OURS:
        if ours in means:
            ratios = [f"HV@{k} {means[ours][i] / best_peer[i]:.2f}x" for i, k in enumerate(checkpoints)
                      if best_peer[i] and not np.isnan(means[ours][i])]
            print(f"{ours} / best peer: " + ", ".join(ratios))
    return means


def device_seconds_to_reach(tr: dict, name: str, target_name: str = "evolution") -> None:
    """Device-seconds the ``name`` runs need to reach plain evolution's final hypervolume, seed by seed."""
    for (n, seed), (secs, hv) in sorted(tr.items()):
        if n != name or (target_name, seed) not in tr:
            continue
        t_secs, t_hv = tr[(target_name, seed)]
        hit = np.flatnonzero(hv >= t_hv[-1])
        where = (f"reached at evaluation {hit[0] + 1} ({secs[hit[0]]:.0f} device-s): "
                 f"{t_secs[-1] / max(secs[hit[0]], 1e-9):.1f}x fewer" if len(hit)
                 else f"not reached (best {hv.max():.4f} vs {t_hv[-1]:.4f})")
        print(f"  seed {seed}: {target_name} HV {t_hv[-1]:.4f} after {len(t_hv)} evaluations ({t_secs[-1]:.0f} device-s); "
              f"{name} {where}")


def plot(curves: dict[str, dict], path: Path) -> None:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=len(curves), cols=2, subplot_titles=[f"{m}: {x}" for m in curves
                                                                   for x in ("HV vs evaluations", "HV vs device-seconds")])
    for row, (mode, tr) in enumerate(curves.items(), start=1):
        for (name, seed), (secs, hv) in sorted(tr.items()):
            kw = dict(mode="lines", name=f"{name} s{seed}", legendgroup=name, showlegend=row == 1)
            fig.add_trace(go.Scatter(x=np.arange(1, len(hv) + 1), y=hv, **kw), row=row, col=1)
            fig.add_trace(go.Scatter(x=secs, y=hv, **{**kw, "showlegend": False}), row=row, col=2)
    fig.update_layout(height=420 * len(curves), title="lts search vs Optuna's samplers (default GPT-2 space)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(path)
    print(f"\nplot: {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", default="results/bench/peers.db")
    ap.add_argument("--device-name", default="bench-cpu")
    ap.add_argument("--pool", type=int, default=200)
    ap.add_argument("--budget", type=int, default=200)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--strategies", nargs="+", default=["evolution", ASSISTED, "random", *PEERS])
    ap.add_argument("--gp-budget", type=int, default=40)
    ap.add_argument("--gp-seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--real-budget", type=int, default=100)
    ap.add_argument("--real-seed", type=int, default=0)
    ap.add_argument("--skip-real", action="store_true")
    ap.add_argument("--plot", default="results/bench/search_vs_peers.html")
    args = ap.parse_args()
    warnings.filterwarnings("ignore", category=FutureWarning)
    Path(args.db).parent.mkdir(parents=True, exist_ok=True)
    store = Store(args.db)

    print(f"1. pool: {args.pool} random architectures measured on this machine ({PROTOCOL})")
    surrogate_bench.ensure_pool(store, args.device_name, args.pool, seed=100)
    dev = surrogate_bench.device_id_of(store, args.device_name)
    device = RecordedDevice(store, dev)
    record = recorded_device_record(store, dev)
    print(f"   recorded device {record['device_id']}: surrogates on {device.n_pool} measurements, held-out log "
          f"residual sd latency {device.sigma['latency_ms']:.3f}, memory {device.sigma['peak_memory_mb']:.3f}; "
          f"{device.seconds:.2f} s per measurement")

    curves: dict[str, dict] = {}
    print(f"\n2. recorded device: {args.budget} evaluations x seeds {args.seeds} (optuna-gp: {args.gp_budget} x {args.gp_seeds})")
    ids, secs = {}, {}
    for name in args.strategies:
        budget, seeds = (args.gp_budget, args.gp_seeds) if name == "optuna-gp" else (args.budget, args.seeds)
        for seed in seeds:
            rid = find_run(store, name, budget, seed, record["device_id"])
            if rid is None:
                t0 = time.perf_counter()
                rid = recorded_run(store, record, device, name, budget, seed)
                secs[(name, seed)] = time.perf_counter() - t0  # proposals, proxies and bookkeeping: no device time
                print(f"   {name} seed {seed}: {secs[(name, seed)]:.0f} s", flush=True)
            ids[(name, seed)] = rid
            # a reused run: its wall time (the recorded device answers in microseconds)
            secs.setdefault((name, seed), float(store.run(rid)["elapsed"] or 0.0))
    tr = traces(store, ids)
    curves["recorded device"] = tr
    table("recorded device (surrogates fitted on real measurements stand in for the device):", args.strategies, tr, secs)
    print("\ndevice-seconds to plain evolution's final hypervolume (recorded device):")
    for name in args.strategies:
        if name != "evolution":
            device_seconds_to_reach(tr, name)

    if not args.skip_real:
        print(f"\n3. real device: {args.real_budget} evaluations, seed {args.real_seed}, every strategy measured for real")
        ids, secs = {}, {}
        for name in args.strategies:
            budget = min(args.real_budget, args.gp_budget) if name == "optuna-gp" else args.real_budget
            rid = find_run(store, name, budget, args.real_seed, dev)
            if rid is None:
                kw = strategy_kwargs(name)
                t0 = time.perf_counter()
                rid = surrogate_bench.run_search(store, args.device_name, kw["strategy"], budget, args.real_seed,
                                                 kw["surrogate"], population=kw["population"], label=name)
                secs[(name, args.real_seed)] = time.perf_counter() - t0
            ids[(name, args.real_seed)] = rid
            secs.setdefault((name, args.real_seed), float(store.run(rid)["elapsed"] or 0.0))
        tr = traces(store, ids)
        curves["real device"] = tr
        for key, (s, _) in tr.items():  # proposal time: the run's wall time less its measurements
            secs[key] = max(0.0, secs[key] - float(s[-1]))
        table("real device (measured on this machine):", args.strategies, tr, secs)
        print("\ndevice-seconds to plain evolution's final hypervolume (real device):")
        for name in args.strategies:
            if name != "evolution":
                device_seconds_to_reach(tr, name)
    plot(curves, Path(args.plot))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
