"""Front quality over time: hypervolume and front size against evaluations and wall time.

For each run, the evaluations in order (``run_members.eval_index``) are replayed at up to
``max_points`` checkpoints. The front after k evaluations is the non-dominated set of (the front
after the previous checkpoint + the evaluations since), which equals the front of the first k
(anything dominated earlier stays dominated), so a 50,000-evaluation run costs ~200 small pymoo
sorts instead of 50,000. Hypervolume is pymoo's, normalised as the search does it
(:func:`lts.objectives.hv_reference`): by default the runs of one device (with the same
objectives) share one reference (:func:`lts.search.runner.common_scales`), so evolution and random
search on that device read on one scale; runs on other devices keep their own box, since a
latency scale of one device says nothing about another.

Wall time: a run does not store when each evaluation happened, but each measurement taken during
the run carries ``measured_at`` (written in the same transaction as the evaluation). Evaluations
that reused a cached measurement from before the run (or were re-measured since) are
interpolated between their neighbours; a run without measurements (proxy only) spreads its
``elapsed`` evenly. ``time_source`` says which.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from lts.decide.fronts import objective_array
from lts.objectives import hv_reference
from lts.pareto import hypervolume, pareto_mask
from lts.search.runner import common_scales, max_decoder_params
from lts.space.ranges import SearchSpace
from lts.store import reads
from lts.store.runs import progress_of_row
from lts.store.db import Store

HISTORY_COLUMNS = ["run_id", "label", "strategy", "device_name", "n_evaluated", "elapsed_s", "hypervolume",
                   "front_size"]


@dataclass(frozen=True)
class HistorySettings:
    max_points: int = 200  # checkpoints per run (every evaluation when the run is shorter)
    common_reference: bool = True  # one hypervolume reference per device and space for the runs shown


def run_evaluations(store: Store, run: Mapping[str, Any]) -> pd.DataFrame:
    """A run's evaluations in order with objectives, feasibility and estimated seconds since its start."""
    df = reads.run_evaluations_frame(store, run["run_id"], run["device_id"], run["protocol"])
    start, end = float(run["created_at"]), float(run["updated_at"]) + 1.0
    t = df["measured_at"].where(df["measured_at"].between(start, end)) - start
    if t.notna().any():
        df["elapsed_s"] = t.interpolate(limit_direction="both").cummax()
        df["time_source"] = np.where(t.notna(), "measured", "interpolated")
    else:
        n = max(len(df), 1)
        df["elapsed_s"] = float(run["elapsed"] or 0.0) * (np.arange(len(df)) + 1) / n
        df["time_source"] = "spread"
    return df


def checkpoints(n: int, max_points: int) -> np.ndarray:
    """Evaluation counts (1..n) at which to record the front: all of them, or ``max_points`` spread evenly."""
    if n <= 0:
        return np.empty(0, dtype=int)
    return np.unique(np.linspace(1, n, min(n, max_points)).round().astype(int))


def hv_history(evals: pd.DataFrame, objectives: Sequence[str], scales: Mapping[str, float],
               max_points: int = 200) -> pd.DataFrame:
    """Hypervolume and front size after each checkpoint's number of evaluations."""
    F = objective_array(evals, objectives)
    ok = evals["feasible"].fillna(0).astype(bool).to_numpy() & np.isfinite(F).all(axis=1)
    div, ref = hv_reference(objectives, scales)
    G = F / div
    elapsed = evals["elapsed_s"].to_numpy(float) if "elapsed_s" in evals else np.full(len(evals), np.nan)
    front = np.empty(0, dtype=int)
    out, done = [], 0
    for k in checkpoints(len(evals), max_points):
        new = np.arange(done, k)[ok[done:k]]
        if len(new):
            cand = np.concatenate([front, new])
            front = cand[pareto_mask(G[cand])]
        done = k
        out.append({"n_evaluated": int(k), "elapsed_s": float(elapsed[k - 1]),
                    "hypervolume": hypervolume(G[front], ref) if len(front) else 0.0, "front_size": len(front)})
    return pd.DataFrame(out, columns=["n_evaluated", "elapsed_s", "hypervolume", "front_size"])


def _space_scale(runs: Sequence[Mapping[str, Any]]) -> float:
    return max(float(max_decoder_params(SearchSpace.from_dict(json.loads(r["space_json"])))) for r in runs)


def quality_history(store: Store, run_ids: Sequence[str], settings: HistorySettings = HistorySettings()
                    ) -> tuple[pd.DataFrame, dict[str, dict[str, float]]]:
    """(long table of checkpoints for every run, the hypervolume scales used per run).

    With ``common_reference`` the runs that share a device, a space (by name) and objectives share one reference (the
    largest decoder-param count of their spaces; 1.1x the worst feasible cost seen in any of them);
    otherwise each run uses the scales it recorded while searching, so its last point equals the
    hypervolume the search reported.
    """
    runs = [r for r in store.runs() if r["run_id"] in set(run_ids)]
    evals = {r["run_id"]: run_evaluations(store, r) for r in runs}
    objectives = {r["run_id"]: tuple(json.loads(r["objectives_json"])) for r in runs}
    scales: dict[str, dict[str, float]] = {}
    if settings.common_reference:
        # a space of its own (the demo's tiny models) would otherwise shrink every GPT-2 run's figure
        space_of = {r["run_id"]: SearchSpace.from_dict(json.loads(r["space_json"])).name for r in runs}
        for key in {(r["device_id"], space_of[r["run_id"]], objectives[r["run_id"]]) for r in runs}:
            group = [r for r in runs if (r["device_id"], space_of[r["run_id"]], objectives[r["run_id"]]) == key]
            rows = [evals[r["run_id"]][["feasible", "latency_ms", "peak_memory_mb"]].to_dict("records") for r in group]
            space = SearchSpace.from_dict(json.loads(group[0]["space_json"]))
            common = {**common_scales(rows, key[2], space), "proxy": _space_scale(group)}
            scales.update({r["run_id"]: common for r in group})
    else:
        for r in runs:
            own = progress_of_row(r).get("hv_scales")
            if own is None:
                rows = [evals[r["run_id"]][["feasible", "latency_ms", "peak_memory_mb"]].to_dict("records")]
                own = common_scales(rows, objectives[r["run_id"]], SearchSpace.from_dict(json.loads(r["space_json"])))
            scales[r["run_id"]] = own
    parts = []
    for r in runs:
        h = hv_history(evals[r["run_id"]], objectives[r["run_id"]], scales[r["run_id"]], settings.max_points)
        device = r.get("device_name") or "proxy only"
        # the label is run_points' source, so a run has one colour on every page
        parts.append(h.assign(run_id=r["run_id"], strategy=r["strategy"], device_name=device,
                              label=f"{device} · {r['strategy']} · {r['run_id']}"))
    if not parts:
        return pd.DataFrame(columns=HISTORY_COLUMNS), scales
    return pd.concat(parts, ignore_index=True)[HISTORY_COLUMNS], scales
