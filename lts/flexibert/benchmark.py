"""The FlexiBERT benchmark table: every applicable proxy ranked against GLUE, beside the published ones.

``run()`` takes a benchmark file (default: the shipped development half, 250 architectures), computes
every proxy the registry declares for the ``flexibert`` family (see :mod:`lts.proxies.encoders`) on the
models as specified (or reads the shipped result file, ``lts/data/flexibert/proxy_values.json``, when it
covers the request), and returns the rows of :mod:`lts.flexibert.ranking`, in this order:

1. ``lts`` rows: each proxy's Spearman / Kendall with 95% bootstrap intervals, top-10% overlap and
   seconds per architecture on this machine (model-based proxies include the seeded model build);
   plus ZeroLM with alpha fitted to GLUE, twice:
   ``zerolm_cv`` -- 5-fold cross-validation within the file (out-of-fold scores), and
   ``zerolm_devfit`` -- the alpha fitted once on the whole shipped development half, applied as is
   (held-out on any file that does not contain those architectures, in-sample on the shipped half).
2. ``published`` rows: the columns of the published CSV (computed by the benchmark's authors with hidden
   size 256 and FFN width 1024 in every layer), for the records the CSV covers.
3. reference rows: the ZeroLM paper's and the data README's figures on all 500 architectures.

The shipped result file is regenerated, deterministically up to the timings, by
``lts proxies benchmark flexibert --recompute --write-cache`` (one torch thread).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from lts.errors import LtsError
from lts.flexibert.config import FAMILY, config_from_dict
from lts.flexibert.params import published_count
from lts.flexibert.ranking import (N_FOLDS, ROW_KEYS, cross_validated_alpha, fit_alpha, metric_rows,
                                   reference_rows)
from lts.flexibert.records import (DATA_DIR, SHIPPED_PUBLISHED, SHIPPED_RECORDS, BenchmarkRecord,
                                   check_published_glue, load_published, load_records, published_columns)
from lts.proxies import encoders, zerolm
from lts.proxies.compare import read_json_cache
from lts.proxies.compute import EncoderProxySettings, score
from lts.proxies.registry import for_family, select
from lts.validate.correlations import BootstrapSettings

CACHE_FILE = DATA_DIR / "proxy_values.json"
CACHE_COMMAND = "lts proxies benchmark flexibert --recompute --write-cache"
CV_NAME = "zerolm_cv"
DEVFIT_NAME = "zerolm_devfit"
Progress = Callable[[int, int], None]
PROXIES = for_family(FAMILY)  # every proxy that applies to FlexiBERT encoders, in order


@dataclass
class BenchmarkResult:
    rows: list[dict[str, Any]]
    records: list[dict[str, Any]]  # per architecture: id, arch_id, glue, describe, values, seconds
    alpha: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)

    def proxy_names(self) -> list[str]:
        return list(self.records[0]["values"]) if self.records else []


# -- per-architecture values ----------------------------------------------------------------
def _round(x: float, digits: int) -> float:
    return float(f"{x:.{digits}g}") if np.isfinite(x) else x


def compute_values(records: Sequence[BenchmarkRecord], specs: Sequence[Any], settings: EncoderProxySettings,
                   corpus: str | None = None, progress: Progress | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """Every proxy of ``specs`` on every record's model as specified; returns the per-record values and
    where the token batch came from."""
    batch = encoders.encoder_batch(settings, corpus) if any(s.needs_data for s in specs) else None
    tokens = batch.tokens if batch is not None else None
    if any(s.needs_model for s in specs) and records:
        # Warm-up, not recorded: torch's lazy initialisation and the data-free alpha are paid once per
        # process, not by one architecture.
        encoders.heuristic_alpha()
        score(records[0].config, specs, tokens, settings)
    out = []
    for i, r in enumerate(records):
        s = score(r.config, specs, tokens, settings)
        out.append({"id": r.id, "arch_id": r.config.arch_id, "glue": r.glue, "describe": r.config.describe(),
                    "values": {k: _round(v, 10) for k, v in s.values.items()},
                    "seconds": {k: _round(v, 4) for k, v in s.seconds.items()}})
        if progress:
            progress(i + 1, len(records))
    return out, batch.source if batch else None


def _specs(proxies: Sequence[str] | str | None) -> list[Any]:
    specs = select(proxies, FAMILY)
    names = [s.name for s in specs]
    if "zerolm" in names:  # the fitted-alpha rows need the two terms; they share zerolm's model build
        specs += [PROXIES[n] for n in ("zerolm_ffn", "zerolm_attn") if n not in names]
    return specs


# -- the shipped result file --------------------------------------------------------------
def load_cache(path: Path = CACHE_FILE) -> dict[str, Any] | None:
    return read_json_cache(path, "FlexiBERT result file", CACHE_COMMAND)


def write_cache(result: BenchmarkResult, path: Path = CACHE_FILE) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The architectures and the published values are in the shipped records and CSV: not repeated here.
    slim = [{k: v for k, v in r.items() if k not in ("config", "published")} for r in result.records]
    meta = {k: v for k, v in result.meta.items() if k != "values_from"}
    doc = {"generated_by": CACHE_COMMAND, **meta, "alpha": result.alpha, "records": slim, "rows": result.rows}
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)


def _cache_covers(doc: Mapping[str, Any] | None, settings: EncoderProxySettings, names: Sequence[str]) -> bool:
    return (doc is not None and doc.get("settings") == settings.to_dict() and doc.get("corpus") is None
            and set(names) <= set(doc.get("proxies", [])))


# -- ZeroLM's alpha fitted on the development half -------------------------------------------
def _parts(recs: Sequence[Mapping[str, Any]]) -> list[zerolm.ZeroLMParts]:
    return [zerolm.ZeroLMParts(r["values"]["zerolm_ffn"], r["values"]["zerolm_attn"]) for r in recs]


def dev_alpha(settings: EncoderProxySettings, cache: Path = CACHE_FILE) -> tuple[float, set[tuple[int, str]]]:
    """The alpha fitted on the whole shipped development half (from the result file when it matches the
    settings, else from freshly built models), and the (id, arch_id) pairs it was fitted on."""
    doc = load_cache(cache)
    if _cache_covers(doc, settings, ("zerolm_ffn", "zerolm_attn")):
        recs = [r for r in doc["records"] if r["glue"] is not None]  # type: ignore[index]
    else:
        dev = [r for r in load_records(SHIPPED_RECORDS) if r.glue is not None]
        recs, _ = compute_values(dev, [PROXIES["zerolm_ffn"], PROXIES["zerolm_attn"]], settings)
    alpha = fit_alpha(_parts(recs), [r["glue"] for r in recs])
    return alpha, {(r["id"], r["arch_id"]) for r in recs}


# -- the table ----------------------------------------------------------------------------
def build_rows(records: Sequence[Mapping[str, Any]], published: Mapping[int, Mapping[str, float]] | None,
               settings: EncoderProxySettings, bootstrap: BootstrapSettings,
               cache: Path = CACHE_FILE) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The table's rows and the alpha report, from per-record values (records without GLUE are left out)."""
    scored = [r for r in records if r["glue"] is not None]
    if len(scored) < 2:
        raise LtsError(f"{len(scored)} record(s) with a GLUE score; ranking needs at least 2")
    glue = [r["glue"] for r in scored]
    names = list(scored[0]["values"])
    values = {n: [r["values"][n] for r in scored] for n in names}
    seconds = {n: float(np.mean([r["seconds"][n] for r in scored])) for n in names}
    alpha: dict[str, Any] = {}
    notes: dict[str, str] = {}
    if "zerolm" in names:
        alpha["data_free"] = encoders.heuristic_alpha()
        notes["zerolm"] = f"data-free alpha {alpha['data_free']:.3g} (self-parameter heuristic)"
        notes["zerolm_analytic"] = notes["zerolm"]
    if "zerolm_ffn" in names and "zerolm_attn" in names:
        parts = _parts(scored)
        zl_seconds = seconds.get("zerolm", seconds["zerolm_ffn"])
        if len(scored) >= 2 * N_FOLDS:
            cv = cross_validated_alpha(parts, glue, [r["id"] for r in scored])
            values[CV_NAME] = list(cv.scores)
            seconds[CV_NAME] = zl_seconds
            notes[CV_NAME] = cv.summary()
            alpha["cv"] = cv.to_dict()
        a_dev, fitted_on = dev_alpha(settings, cache)
        overlap = sum((r["id"], r["arch_id"]) in fitted_on for r in scored)
        values[DEVFIT_NAME] = [p.score(a_dev) for p in parts]
        seconds[DEVFIT_NAME] = zl_seconds
        status = ("in-sample: fitted on these records" if overlap == len(scored) else
                  "held-out: none of these records was in the fit" if overlap == 0 else
                  f"{overlap} of {len(scored)} records were in the fit")
        notes[DEVFIT_NAME] = f"alpha {a_dev:.3g} fitted on the shipped dev half (all of it); {status}"
        alpha["dev_fit"] = {"alpha": a_dev, "records_in_fit": overlap, "records": len(scored)}
    order = [n for n in ("total_params", "encoder_params", "zerolm", CV_NAME, DEVFIT_NAME) if n in values]
    order += [n for n in values if n not in order]
    rows = metric_rows({n: values[n] for n in order}, glue, "lts", bootstrap, seconds, notes)
    if published:
        rows += _published_rows(scored, published, bootstrap)
    rows += reference_rows()
    return [{k: r.get(k) for k in ROW_KEYS} for r in rows], alpha


def _published_rows(scored: Sequence[Mapping[str, Any]], published: Mapping[int, Mapping[str, float]],
                    bootstrap: BootstrapSettings) -> list[dict[str, Any]]:
    covered = [r for r in scored if r["id"] in published]
    if len(covered) < 2:
        return []
    cols = published_columns(published)
    values = {c: [published[r["id"]].get(c, float("nan")) for r in covered] for c in cols}
    notes = {c: "published (hidden 256, FFN 1024 for every record)" for c in cols}
    if "Number of Parameters" in cols:
        same = sum(published_count(config_from_dict(r["config"])) == published[r["id"]]["Number of Parameters"]
                   for r in covered)
        notes["Number of Parameters"] = (f"published; lts reproduces {same} of {len(covered)} exactly "
                                         "with hidden 256, FFN 1024")
    return metric_rows(values, [r["glue"] for r in covered], "published", bootstrap, None, notes)


# -- entry points -------------------------------------------------------------------------
def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def run(data: str | Path | None = None, published: str | Path | None = None, proxies: Sequence[str] | str | None = None,
        settings: EncoderProxySettings = EncoderProxySettings(), bootstrap: BootstrapSettings = BootstrapSettings(),
        recompute: bool = False, limit: int | None = None, corpus: str | None = None, cache: Path = CACHE_FILE,
        progress: Progress | None = None) -> BenchmarkResult:
    """The benchmark table for a records file (``None``: the shipped development half).

    ``published``: a CSV of published proxy values (``None``: the shipped one for the shipped records;
    none for another file). Values come from the shipped result file when it covers the request (the
    shipped records, the same settings and default corpus, no ``limit``), else they are computed now."""
    path = Path(data) if data is not None else SHIPPED_RECORDS
    shipped = _same_file(path, SHIPPED_RECORDS)
    records = load_records(path)
    if limit is not None:
        if limit < 2:
            raise LtsError(f"--limit must be at least 2 (a rank correlation needs two architectures), got {limit}")
        records = records[:limit]
    n_scored = sum(r.glue is not None for r in records)
    if n_scored < 2:  # before any model is built: the table ranks against GLUE
        raise LtsError(f"{path.name}: {n_scored} record(s) with a GLUE score (scores.glue, completed); "
                       "ranking needs at least 2")
    pub_path = Path(published) if published is not None else (SHIPPED_PUBLISHED if shipped else None)
    table = load_published(pub_path) if pub_path is not None else None
    if table is not None:
        check_published_glue(records, table, str(pub_path))
    specs = _specs(proxies)
    names = [s.name for s in specs]
    doc = None if (recompute or limit is not None or corpus is not None or not shipped) else load_cache(cache)
    t0 = time.time()
    by_id = {r["id"]: r for r in doc["records"]} if doc is not None else {}
    if _cache_covers(doc, settings, names) and all(by_id.get(r.id, {}).get("arch_id") == r.config.arch_id
                                                   for r in records):
        values = [{**by_id[r.id], "values": {n: by_id[r.id]["values"][n] for n in names},
                   "seconds": {n: by_id[r.id]["seconds"][n] for n in names}} for r in records]
        tokens, meta_from = doc.get("tokens"), "from " + _display(cache)  # type: ignore[union-attr]
    else:
        values, tokens = compute_values(records, specs, settings, corpus, progress)
        meta_from = "computed now"
    for v, r in zip(values, records):
        v["config"] = r.config.to_dict()
        if table is not None and r.id in table:
            v["published"] = {k: x for k, x in table[r.id].items() if k != "GLUE Score"}
    rows_cached = (doc is not None and meta_from != "computed now" and doc.get("bootstrap") == _boot_dict(bootstrap)
                   and doc.get("proxies") == names and published is None)
    if rows_cached:
        rows, alpha = doc["rows"], doc["alpha"]  # type: ignore[index]
    else:
        rows, alpha = build_rows(values, table, settings, bootstrap, cache)
    meta = {"data": _display(path), "published": _display(pub_path) if pub_path else None, "n_records": len(records),
            "n_scored": sum(r["glue"] is not None for r in values), "settings": settings.to_dict(),
            "bootstrap": _boot_dict(bootstrap), "tokens": tokens, "corpus": corpus, "proxies": names,
            "values_from": meta_from, "torch": torch.__version__, "threads": torch.get_num_threads(),
            "wall_seconds": round(time.time() - t0, 1)}
    return BenchmarkResult(rows=rows, records=values, alpha=alpha, meta=meta)


def _display(path: Path) -> str:
    """A shipped file as ``lts/data/...`` (the same on every checkout), any other as given."""
    root = Path(__file__).resolve().parents[2]
    try:
        return str(path.resolve().relative_to(root))
    except ValueError:
        return str(path)


def _boot_dict(b: BootstrapSettings) -> dict[str, Any]:
    return {"n_resamples": b.n_resamples, "confidence": b.confidence, "seed": b.seed}


def shipped_result(cache: Path = CACHE_FILE) -> BenchmarkResult | None:
    """The shipped table and per-record values, read from the result file only (never computed): what
    the dashboard shows. ``None`` when the file is missing."""
    doc = load_cache(cache)
    if doc is None:
        return None
    meta = {k: v for k, v in doc.items() if k not in ("rows", "records", "alpha")}
    published = load_published(SHIPPED_PUBLISHED)
    records = [{**r, "published": {k: x for k, x in published.get(r["id"], {}).items() if k != "GLUE Score"}}
               for r in doc["records"]]
    return BenchmarkResult(rows=doc["rows"], records=records, alpha=doc["alpha"], meta=meta)


def scatter_proxies(result: BenchmarkResult) -> list[str]:
    """What a scatter can plot: lts's proxies, then the published columns."""
    published = next((list(r["published"]) for r in result.records if r.get("published")), [])
    return result.proxy_names() + published


def scatter_points(result: BenchmarkResult, proxy: str) -> list[dict[str, Any]]:
    """``{id, glue, value, describe}`` per scored architecture with a finite value of ``proxy`` (one of
    lts's proxies or a published column), for a proxy-vs-GLUE scatter."""
    out = []
    for r in result.records:
        v = r["values"].get(proxy, (r.get("published") or {}).get(proxy))
        if r["glue"] is not None and v is not None and np.isfinite(v):
            out.append({"id": r["id"], "glue": r["glue"], "value": v, "describe": r.get("describe", "")})
    return out
