"""How well each proxy ranks trained architectures: on LTS's published models and on our validation runs.

For each proxy and each set of trained models: Spearman and Kendall against perplexity, the top-10%
overlap, and the seconds it costs per architecture. Sign convention as :func:`lts.reference.correlations`:
+1 means "a larger proxy ranks exactly as a lower perplexity" (proxies whose ``higher_is_better``
is False are negated first).

* :func:`compare_reference` -- LTS's 400 published random-set models (200 GPT-2, 200 Transformer-XL,
  WikiText-103 ``valid_ppl``). Deterministic, so the full result is shipped in
  ``lts/data/proxy_reference.json`` (regenerate with ``lts proxies compare --reference --recompute
  --write-cache``) and read instantly unless a recomputation is asked for.
* :func:`compare_validation` -- one of our validation runs (tables ``validation_runs`` and
  ``validation_results``, migration v2 of :mod:`lts.store.db`), every proxy computed live.

Besides the registry's proxies each table has ``zerolm_fit``: ZeroLM with alpha *fitted to
perplexity* (the paper's validation-set option). Fitting and scoring on the same models would
flatter it, so it is cross-fitted: alpha is fitted on the even-indexed models and scored on the
odd-indexed ones and vice versa; the row shows the mean of the two held-out halves.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from scipy import stats

from lts.errors import LtsError
from lts.proxies import zerolm
from lts.proxies.compute import ProxySettings, score
from lts.proxies.registry import PROXIES, ProxySpec, select
from lts.proxies.tokens import Batch, corpus_batch, validation_batch
from lts.space.config import Config, config_from_json
from lts.store import validations

CACHE_FILE = Path(__file__).resolve().parent.parent / "data" / "proxy_reference.json"
CACHE_COMMAND = "lts proxies compare --reference --recompute --write-cache"
TOP_FRACTION = 0.1
FIT_NAME = "zerolm_fit"
_MIN_FIT = 8  # fewer models than this: no cross-fitted alpha (4 per half is no fit)
Progress = Callable[[int, int], None]


# -- metrics ------------------------------------------------------------------------------
def _clean(values: Sequence[float]) -> np.ndarray:
    # NaN (a proxy that failed) ranks as the worst value, like -inf (e.g. a singular NASWOT kernel).
    a = np.asarray(values, dtype=float)
    return np.where(np.isnan(a), -np.inf, a)


def top_overlap(values: Sequence[float], ppl: Sequence[float], fraction: float = TOP_FRACTION) -> float:
    """Share of the ``ceil(fraction * n)`` lowest-perplexity models that are among the same number
    of highest-``values`` models. Ties are broken by position (first wins), so it is deterministic."""
    v, p = _clean(values), np.asarray(ppl, dtype=float)
    if len(v) != len(p) or len(v) == 0:
        raise ValueError("values and perplexities must be non-empty and of equal length")
    k = max(1, math.ceil(fraction * len(v)))
    best_true = set(np.argsort(p, kind="stable")[:k].tolist())
    best_proxy = set(np.argsort(-v, kind="stable")[:k].tolist())
    return len(best_true & best_proxy) / k


def _stat(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def rank_metrics(values: Sequence[float], ppl: Sequence[float], higher_is_better: bool = True) -> dict[str, Any]:
    """Spearman, Kendall (+1 = ranks like lower perplexity) and top-10% overlap."""
    v = _clean(values)
    v = v if higher_is_better else -v
    p = np.asarray(ppl, dtype=float)
    constant = len(v) < 2 or np.all(v == v[0])
    return {
        "n": int(len(v)),
        "spearman": None if constant else _stat(stats.spearmanr(v, -p).statistic),
        "kendall": None if constant else _stat(stats.kendalltau(v, -p).statistic),
        "top10_overlap": top_overlap(v, p) if len(v) else None,
    }


# -- per-architecture values --------------------------------------------------------------
def _round(x: float, digits: int) -> float:
    return float(f"{x:.{digits}g}") if np.isfinite(x) else x


def score_records(
    items: Sequence[tuple[Config, Mapping[str, Any]]],
    specs: Sequence[ProxySpec],
    batch: Batch | None,
    settings: ProxySettings,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """``items`` are (config, fields to keep); returns the fields plus ``values`` and ``seconds``."""
    if any(s.needs_model for s in specs) and items:
        # Warm-up, not recorded: the first build pays torch's lazy initialisation, and ZeroLM's
        # heuristic alpha is computed once per family; neither belongs to one architecture's cost.
        for fam in sorted({c.family for c, _ in items}):
            zerolm.heuristic_alpha(fam)
        score(items[0][0], specs, batch.tokens if batch else None, settings)
    out = []
    for i, (cfg, keep) in enumerate(items):
        s = score(cfg, specs, batch.tokens if batch else None, settings)
        out.append({**keep, "arch_id": cfg.arch_id, "reduced_vocab": s.reduced_vocab,
                    "values": {k: _round(v, 10) for k, v in s.values.items()},
                    "seconds": {k: _round(v, 4) for k, v in s.seconds.items()}})
        if progress:
            progress(i + 1, len(items))
    return out


# -- summaries ----------------------------------------------------------------------------
def _fit_row(recs: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """ZeroLM with alpha fitted on one half of the models (by parity) and scored on the other."""
    if len(recs) < _MIN_FIT or not all("zerolm_ffn" in r["values"] and "zerolm_attn" in r["values"] for r in recs):
        return None
    parts = [zerolm.ZeroLMParts(r["values"]["zerolm_ffn"], r["values"]["zerolm_attn"]) for r in recs]
    ppl = np.array([r["valid_ppl"] for r in recs], dtype=float)
    halves = [np.arange(0, len(recs), 2), np.arange(1, len(recs), 2)]
    metrics, alphas = [], []
    for fit, held in (halves, halves[::-1]):
        alpha = zerolm.fit_alpha([parts[i] for i in fit], ppl[fit])
        alphas.append(alpha)
        metrics.append(rank_metrics([parts[i].score(alpha) for i in held], ppl[held]))
    row: dict[str, Any] = {"n": len(recs)}
    for key in ("spearman", "kendall", "top10_overlap"):
        vals = [m[key] for m in metrics]
        row[key] = None if any(v is None for v in vals) else float(np.mean(vals))
    secs = [max(r["seconds"]["zerolm_ffn"], r["seconds"]["zerolm_attn"]) for r in recs]
    row["seconds_per_arch"] = float(np.mean(secs))
    row["note"] = "cross-fitted on halves; alpha " + ", ".join(f"{a:.3g}" for a in alphas)
    return row


def summarise(records: Sequence[Mapping[str, Any]], proxies: Sequence[str], source: str) -> list[dict[str, Any]]:
    """One row per (set, proxy) from scored records (each with ``set``, ``family``, ``valid_ppl``)."""
    by_set: dict[str, list[Mapping[str, Any]]] = {}
    for r in records:
        if r.get("valid_ppl") is not None:
            by_set.setdefault(r["set"], []).append(r)
    rows = []
    for set_name, recs in sorted(by_set.items()):
        ppl = [r["valid_ppl"] for r in recs]
        family = recs[0]["family"]
        for name in proxies:
            spec = PROXIES[name]
            row = {"source": source, "set": set_name, "family": family, "proxy": name,
                   **rank_metrics([r["values"][name] for r in recs], ppl, spec.higher_is_better),
                   "seconds_per_arch": float(np.mean([r["seconds"][name] for r in recs])),
                   "needs_data": spec.needs_data, "needs_grad": spec.needs_grad, "note": ""}
            if name == "zerolm":
                row["note"] = f"heuristic alpha {zerolm.heuristic_alpha(family):.3g}"
            rows.append(row)
        fit = _fit_row(recs)
        if fit is not None:
            rows.append({"source": source, "set": set_name, "family": family, "proxy": FIT_NAME, **fit,
                         "needs_data": False, "needs_grad": False})
    return rows


# -- LTS's published models ---------------------------------------------------------------
def reference_items(limit: int | None = None) -> list[tuple[Config, dict[str, Any]]]:
    """The published random-set models with a perplexity; ``limit``: the first N of each set."""
    from lts.reference import load_reference

    per_set: dict[str, list[tuple[Config, dict[str, Any]]]] = {}
    for r in load_reference():
        if r.kind == "random" and r.valid_ppl is not None:
            per_set.setdefault(r.set_name, []).append(
                (r.config, {"set": r.set_name, "family": r.family, "name": r.name, "valid_ppl": r.valid_ppl}))
    return [item for _, items in sorted(per_set.items()) for item in items[:limit]]


def compute_reference(
    proxies: Sequence[str] | None = None,
    limit: int | None = None,
    settings: ProxySettings = ProxySettings(),
    corpus: str | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Score the published models now; returns the document the cache file holds."""
    specs = select(",".join(proxies) if proxies else None)
    batch = corpus_batch(settings.batch, settings.seq_len, settings.seed, corpus) if any(s.needs_data for s in specs) else None
    items = reference_items(limit)
    t0 = time.time()
    records = score_records(items, specs, batch, settings, progress)
    names = [s.name for s in specs]
    return {
        "generated_by": CACHE_COMMAND,
        "settings": settings.to_dict(),
        "tokens": batch.source if batch else None,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "wall_seconds": round(time.time() - t0, 1),
        "proxies": names,
        "records": records,
        "rows": summarise(records, names, "reference"),
    }


def read_json_cache(path: str | Path, what: str, command: str) -> dict[str, Any] | None:
    """A shipped/generated JSON result file: None when absent, a one-line error naming the fix when damaged."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as exc:
        raise LtsError(f"{path}: unreadable {what} ({exc}); regenerate it with {command}") from None


def load_cache(path: Path = CACHE_FILE) -> dict[str, Any] | None:
    return read_json_cache(path, "proxy cache", CACHE_COMMAND)


def write_cache(doc: Mapping[str, Any], path: Path = CACHE_FILE) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)


def compare_reference(
    proxies: Sequence[str] | None = None,
    limit: int | None = None,
    recompute: bool = False,
    settings: ProxySettings = ProxySettings(),
    cache: Path = CACHE_FILE,
    corpus: str | None = None,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """Rows for the published models: from the shipped cache when it covers the request (same
    settings, default corpus, all models), else computed now."""
    wanted = list(proxies) if proxies else [s.name for s in select(None)]
    doc = None if (recompute or limit is not None or corpus is not None) else load_cache(cache)
    if doc is not None and doc.get("settings") == settings.to_dict() and set(wanted) <= set(doc.get("proxies", [])):
        return [r for r in doc["rows"] if r["proxy"] in wanted or (r["proxy"] == FIT_NAME and "zerolm" in wanted)]
    return compute_reference(wanted, limit, settings, corpus, progress)["rows"]


# -- our validation runs ------------------------------------------------------------------
def validation_run(store: Any, validation_id: str | None) -> dict[str, Any]:
    """The run named (or, with ``None``, the latest one); one-line errors when there is none."""
    if not validations.has_tables(store):
        raise LtsError(f"{store.path}: no validation runs yet (this database predates them); run lts validate first")
    every = validations.list_all(store)  # newest first
    if validation_id is None:
        if not every:
            raise LtsError(f"{store.path}: no validation run yet; train some architectures with lts validate first")
        return every[0].to_dict()
    run = next((v for v in every if v.validation_id == validation_id), None)
    if run is None:
        raise LtsError(f"{store.path}: no validation run {validation_id!r}")
    return run.to_dict()


def compare_validation(
    store: Any,
    validation_id: str | None = None,
    proxies: Sequence[str] | None = None,
    settings: ProxySettings = ProxySettings(),
    corpus: str | None = None,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """Rows for one validation run's finished architectures (``None``: the latest run)."""
    run = validation_run(store, validation_id)
    vid = run["validation_id"]
    done = [r for r in validations.results(store, vid) if r["valid_ppl"] is not None]  # in position order
    if len(done) < 2:
        raise LtsError(f"validation run {vid} has {len(done)} finished architecture(s); a ranking needs at least 2")
    specs = select(",".join(proxies) if proxies else None)
    batch = None
    if any(s.needs_data for s in specs):
        batch = validation_batch(run, settings.batch, settings.seq_len, settings.seed) or corpus_batch(
            settings.batch, settings.seq_len, settings.seed, corpus)
    items = []
    for r in done:
        cfg = config_from_json(r["config_json"], source=f"architecture {r['arch_id']}")
        items.append((cfg, {"set": vid, "family": cfg.family, "valid_ppl": float(r["valid_ppl"])}))
    records = score_records(items, specs, batch, settings, progress)
    rows = summarise(records, [s.name for s in specs], f"validation:{vid}")
    for row in rows:  # which tokens the data proxies read: the run's own, or corpus bytes as a fallback
        if batch is not None and row["needs_data"]:
            row["tokens"] = batch.source
    return rows

