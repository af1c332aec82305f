"""Checks behind the proxy comparison's departures (run under ``nice``; a few minutes on 2 cores).

1. Vocabulary reduction: on a subset of LTS's published models spread over their size range, every
   model-based proxy computed with the full vocabulary (50k / 268k) and with the reduced one (256):
   Spearman between the two value vectors, and each one's Spearman against published perplexity.
2. Seed stability: the same subset with model-init and batch seed 1 instead of 0.
3. ZeroLM's weight statistic against its analytic expectation, on all 400 models of the shipped
   cache (``lts/data/proxy_reference.json``).
4. From the same cache: a paired bootstrap (2000 resamples of the 200 models, seed 0) of each
   proxy's Spearman minus decoder_params' -- is a proxy that scores higher really better?

    nice -n 15 .venv/bin/python bench/proxy_compare.py [--gpt2 12] [--transxl 8] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lts.proxies import compare  # noqa: E402
from lts.proxies.compute import ProxySettings, score  # noqa: E402
from lts.space.counts import decoder_params  # noqa: E402
from lts.proxies.registry import PROXIES  # noqa: E402
from lts.proxies.tokens import corpus_batch  # noqa: E402

MODEL_PROXIES = [n for n, s in PROXIES.items() if s.needs_model]


def spread(items: list, n: int) -> list:
    """``n`` items evenly spaced over the list sorted by decoder parameters (smallest to largest)."""
    items = sorted(items, key=lambda it: decoder_params(it[0]))
    idx = np.linspace(0, len(items) - 1, n).round().astype(int)
    return [items[i] for i in sorted(set(idx.tolist()))]


def values(items: list, settings: ProxySettings) -> dict[str, list[float]]:
    specs = [PROXIES[n] for n in MODEL_PROXIES]
    batch = corpus_batch(settings.batch, settings.seq_len, settings.seed)
    out: dict[str, list[float]] = {n: [] for n in MODEL_PROXIES}
    for cfg, _ in items:
        s = score(cfg, specs, batch.tokens, settings)
        for n in MODEL_PROXIES:
            out[n].append(s.values[n])
    return out


def rho(a: list[float], b: list[float]) -> float:
    r = stats.spearmanr(a, b).statistic
    return round(float(r), 3) if np.isfinite(r) else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gpt2", type=int, default=12)
    ap.add_argument("--transxl", type=int, default=8)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    report: dict[str, object] = {}
    items = compare.reference_items()
    for set_name, n in (("random_GPT2_wt103", args.gpt2), ("random_TransXL_wt103", args.transxl)):
        subset = spread([it for it in items if it[1]["set"] == set_name], n)
        ppl = [-it[1]["valid_ppl"] for it in subset]
        t0 = time.time()
        reduced = values(subset, ProxySettings())
        t_red = time.time() - t0
        t0 = time.time()
        full = values(subset, ProxySettings(reduce_vocab_above=None))
        t_full = time.time() - t0
        seed1 = values(subset, ProxySettings(seed=1))
        rows = {p: {"reduced_vs_full": rho(reduced[p], full[p]), "full_vs_ppl": rho(full[p], ppl),
                    "reduced_vs_ppl": rho(reduced[p], ppl), "seed0_vs_seed1": rho(reduced[p], seed1[p])}
                for p in MODEL_PROXIES}
        report[set_name] = {"n": len(subset), "seconds_reduced": round(t_red, 1), "seconds_full": round(t_full, 1),
                            "proxies": rows}
        print(f"{set_name}: {len(subset)} models, reduced vocab {t_red:.1f} s, full vocab {t_full:.1f} s")
        print(f"  {'proxy':16s} {'red~full':>9s} {'full~ppl':>9s} {'red~ppl':>9s} {'seed0~1':>9s}")
        for p, r in rows.items():
            print(f"  {p:16s} {r['reduced_vs_full']:9.3f} {r['full_vs_ppl']:9.3f} {r['reduced_vs_ppl']:9.3f} "
                  f"{r['seed0_vs_seed1']:9.3f}")
    doc = compare.load_cache()
    if doc is not None:
        for set_name in ("random_GPT2_wt103", "random_TransXL_wt103"):
            recs = [r for r in doc["records"] if r["set"] == set_name]
            w = [r["values"]["zerolm"] for r in recs]
            a = [r["values"]["zerolm_analytic"] for r in recs]
            rel = np.abs(np.array(w) / np.array(a) - 1)
            report.setdefault("zerolm_weights_vs_analytic", {})[set_name] = {  # type: ignore[union-attr]
                "spearman": rho(w, a), "max_relative_difference": float(rel.max())}
            print(f"{set_name}: ZeroLM weights vs analytic expectation: Spearman {rho(w, a):.4f}, "
                  f"largest relative difference {rel.max():.4f}")
        for set_name in ("random_GPT2_wt103", "random_TransXL_wt103"):
            recs = [r for r in doc["records"] if r["set"] == set_name]
            ppl = np.array([r["valid_ppl"] for r in recs])
            rng = np.random.default_rng(0)
            idx = rng.integers(0, len(recs), size=(2000, len(recs)))
            base = np.array([r["values"]["decoder_params"] for r in recs])
            diffs = {}
            for p in doc["proxies"]:
                if p == "decoder_params":
                    continue
                v = np.array([r["values"][p] for r in recs])
                d = [stats.spearmanr(v[i], -ppl[i]).statistic - stats.spearmanr(base[i], -ppl[i]).statistic for i in idx[:2000]]
                lo, hi = np.percentile(d, [2.5, 97.5])
                diffs[p] = {"mean": round(float(np.mean(d)), 4), "ci95": [round(float(lo), 4), round(float(hi), 4)]}
            report.setdefault("spearman_minus_decoder_params", {})[set_name] = diffs  # type: ignore[union-attr]
            print(f"{set_name}: Spearman minus decoder_params' (paired bootstrap, 95% interval)")
            for p, d in diffs.items():
                print(f"  {p:16s} {d['mean']:+.4f}  [{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}]")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
