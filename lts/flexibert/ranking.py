"""How well a proxy ranks the benchmark's architectures by GLUE: the rows of the benchmark table.

Sign: as the values come, **+1 means "a larger value ranks exactly as a higher GLUE score"**; nothing
is flipped, so a published column that points the other way shows a negative correlation.

* Spearman and Kendall (tau-b) with 95% percentile-bootstrap intervals from
  :func:`lts.validate.correlations.correlate`: the architectures are resampled with replacement
  2,000 times from one seeded generator, and every proxy of a table sees the *same* resamples, so
  the intervals of two proxies are comparable (paired). We use that seeded numpy resampling rather than
  ``scipy.stats.bootstrap`` because it is the project's one implementation (the validation runs use
  it too), it vectorises the rank statistics over all resamples, and BCa (scipy's default) would add
  a jackknife pass per proxy for intervals that differ little at n = 250.
* Top-10% overlap (:func:`lts.proxies.compare.top_overlap`): the share of the ``ceil(0.1 n)`` best
  GLUE scores among the same number of largest proxy values.

ZeroLM's alpha fitted to GLUE is never scored on the records it was fitted on without saying so:
:func:`cross_validated_alpha` fits it on four of five folds and scores the fifth (out-of-fold scores,
each record ranked by an alpha that never saw it); :func:`fit_alpha` fits it once on a whole file, the
alpha meant for other files (the kept-aside half).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np
from scipy import stats

from lts.proxies import zerolm
from lts.proxies.compare import top_overlap
from lts.validate.correlations import BootstrapSettings, correlate

N_FOLDS = 5
FOLD_SEED = 0
ROW_KEYS = ("source", "proxy", "n", "spearman", "spearman_lo", "spearman_hi", "kendall", "kendall_lo", "kendall_hi",
            "top10_overlap", "seconds_per_arch", "note")


def metric_rows(values: Mapping[str, Sequence[float]], glue: Sequence[float], source: str,
                bootstrap: BootstrapSettings = BootstrapSettings(),
                seconds: Mapping[str, float | None] | None = None,
                notes: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """One row per proxy of ``values`` (each aligned with ``glue``); non-finite values are left out of
    that proxy's correlations (a singular NASWOT kernel, say) and rank last in its top-10% overlap."""
    names = list(values)
    glue = np.asarray(glue, dtype=float)
    # correlate() speaks perplexity (lower is better, negated inside): -GLUE is exactly that.
    rows = [{"valid_ppl": -g, **{n: float(values[n][i]) for n in names}} for i, g in enumerate(glue)]
    out = []
    for c in correlate(rows, names, bootstrap):
        name = c["proxy"]
        out.append({
            "source": source, "proxy": name, "n": c["n"],
            **{k: c[k] for k in ("spearman", "spearman_lo", "spearman_hi", "kendall", "kendall_lo", "kendall_hi")},
            "top10_overlap": top_overlap(values[name], -glue) if len(glue) else None,
            "seconds_per_arch": (seconds or {}).get(name),
            "note": (notes or {}).get(name, ""),
        })
    return out


@dataclass(frozen=True)
class Fold:
    fold: int
    n_fit: int
    n_held: int
    alpha: float
    spearman: float | None  # of the held-out fold, scored with the fold's alpha
    kendall: float | None


@dataclass(frozen=True)
class CrossValidation:
    folds: tuple[Fold, ...]
    scores: tuple[float, ...]  # out-of-fold ZeroLM score of every record, in input order

    def summary(self) -> str:
        rhos = [f.spearman for f in self.folds if f.spearman is not None]
        spread = f"held-out fold Spearman {np.mean(rhos):.3f} +- {np.std(rhos):.3f}" if rhos else "no fold correlation"
        return (f"{len(self.folds)}-fold CV by id (seed {FOLD_SEED}); fold alphas "
                + ", ".join(f"{f.alpha:.3g}" for f in self.folds) + f"; {spread}")

    def to_dict(self) -> dict[str, Any]:
        return {"folds": [asdict(f) for f in self.folds], "summary": self.summary()}


def fold_of(ids: Sequence[int], k: int = N_FOLDS, seed: int = FOLD_SEED) -> np.ndarray:
    """Fold index of each record: the ids sorted, shuffled by a seeded generator, dealt round-robin
    (so the split depends on the set of ids, not on the file's order)."""
    order = np.argsort(np.asarray(ids), kind="stable")
    perm = np.random.default_rng(seed).permutation(len(ids))
    folds = np.empty(len(ids), dtype=int)
    folds[order[perm]] = np.arange(len(ids)) % k
    return folds


def _corr(x: np.ndarray, y: np.ndarray) -> tuple[float | None, float | None]:
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None, None
    rho, tau = stats.spearmanr(x, y).statistic, stats.kendalltau(x, y).statistic
    return (float(rho) if math.isfinite(rho) else None), (float(tau) if math.isfinite(tau) else None)


def fit_alpha(parts: Sequence[zerolm.ZeroLMParts], glue: Sequence[float]) -> float:
    """The grid alpha whose ZeroLM ranks ``glue`` best (Spearman; the smallest within tolerance of the best)."""
    return zerolm.best_alpha(parts, glue)


def cross_validated_alpha(parts: Sequence[zerolm.ZeroLMParts], glue: Sequence[float], ids: Sequence[int],
                          k: int = N_FOLDS, seed: int = FOLD_SEED) -> CrossValidation:
    """Alpha fitted on k-1 folds, ZeroLM scored on the held-out fold, for each of the k folds."""
    if len(parts) < 2 * k:
        raise ValueError(f"{len(parts)} records are too few for {k}-fold cross-validation (need {2 * k})")
    glue = np.asarray(glue, dtype=float)
    folds = fold_of(ids, k, seed)
    scores = np.empty(len(parts))
    out = []
    for f in range(k):
        fit, held = np.flatnonzero(folds != f), np.flatnonzero(folds == f)
        alpha = fit_alpha([parts[i] for i in fit], glue[fit])
        scores[held] = [parts[i].score(alpha) for i in held]
        rho, tau = _corr(scores[held], glue[held])
        out.append(Fold(f, len(fit), len(held), alpha, rho, tau))
    return CrossValidation(tuple(out), tuple(float(s) for s in scores))


# Published figures, for the table's last rows (n = all 500 architectures; no intervals published).
REFERENCE_ROWS: tuple[dict[str, Any], ...] = (
    {"source": "ZeroLM paper (500)", "proxy": "zerolm", "n": 500, "spearman": 0.76, "kendall": 0.53,
     "note": "arXiv 2503.18646, its alpha"},
    {"source": "ZeroLM paper (500)", "proxy": "params", "n": 500, "spearman": 0.647, "kendall": 0.451,
     "note": "ZeroLM's margin over the parameter count: 0.113 / 0.079"},
    {"source": "reference README (500)", "proxy": "total_params", "n": 500, "spearman": 0.676, "kendall": 0.485,
     "note": "parameters as specified, on all 500"},
    {"source": "reference README (500)", "proxy": "Number of Parameters", "n": 500, "spearman": 0.652,
     "kendall": 0.454, "note": "the published column (hidden 256, FFN 1024), on all 500"},
)


def reference_rows() -> list[dict[str, Any]]:
    return [{k: r.get(k) for k in ROW_KEYS} for r in REFERENCE_ROWS]
