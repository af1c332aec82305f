"""ZeroLM (Chen et al., 2025, arXiv 2503.18646): a data-free capacity score from weight statistics.

What we implement (the paper's idea, our exact formula; departures are listed below):

* Each decoder weight matrix ``W`` (``m x n``) contributes its *capacity*
  ``c(W) = ||W||_F^2 / min(m, n)``, i.e. the mean of its squared singular values
  (``||W||_F^2 = sum_i s_i^2`` over the ``min(m, n)`` singular values), so no SVD is needed.
* Attention is split into its functional sub-modules: one matrix per head for the query, key and
  value projections (``d_head x d_model`` each; Transformer-XL also has a per-head *positional* key
  projection ``r_net``), plus the output projection as one matrix. The FFN contributes its two
  matrices. Biases, LayerNorms and Transformer-XL's ``r_w_bias``/``r_r_bias`` vectors are not
  matrices and are left out.
* ``S_attn = sum_layers sum_{attention matrices} c(W)``, ``S_ffn = sum_layers sum_{FFN matrices} c(W)``,
  and ``ZeroLM = S_ffn + alpha * S_attn``.
* Other models (the FlexiBERT encoders of :mod:`lts.flexibert`) list their own attention and FFN
  matrices through ``zerolm_matrices()``; :func:`weight_parts` sums the same capacities over them.
* ``alpha``: by default a data-free heuristic ("self-parameter correlation"): the ``alpha`` on a fixed
  log grid whose score ranks a seeded sample of the family's search space most like the
  architectures' own decoder parameter counts (Spearman). :func:`fit_alpha` instead fits it to
  measured perplexities (the paper's "benchmark sampling" alternative).

Departures from the paper, and why:

* The paper's exact normalisation, head split and alpha heuristic are not reproduced from its text
  (we had only public summaries); the formulas above are ours and are the ones tested.
* At initialisation every lts weight is i.i.d. normal(0, sigma=0.02) (``lts.models._init_``). Then
  ``E[||W||_F^2] = sigma^2 m n`` and ``E[c(W)] = sigma^2 max(m, n)``, with a relative standard
  deviation of ``sqrt(2 / (m n))`` -- tiny for these sizes. So the init-time statistic carries *no*
  information beyond the shapes: :func:`expected_parts` computes the same score analytically from
  the config, and the two rank architectures identically up to sampling noise (measured in
  ``bench/proxy_compare.py``). Note what the shapes give: a per-head query matrix contributes
  ``sigma^2 d_model`` whatever its head width, so ``S_attn`` counts ``n_head * d_model`` rather than
  attention parameters, and an FFN matrix contributes ``sigma^2 max(d_model, d_inner)``, so
  ``S_ffn`` ignores ``d_model`` whenever ``d_inner >= d_model`` (always, in LTS's spaces).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np
import torch
from scipy import stats
from torch import nn

from lts.space.counts import decoder_params
from lts.space.config import Config, GPT2Config

INIT_STD = 0.02  # lts.models' init; the analytic expectation scales with its square
# 0 (attention ignored) and log2(alpha) from -8 to 12 in half steps: 42 candidates. On LTS's
# spaces the self-parameter optimum lies at the attention-dominated end (the Spearman curve is
# flat, to 4 decimals, above about 2^8), so the grid reaches well past it.
ALPHA_GRID: tuple[float, ...] = (0.0, *(2.0 ** (k / 2) for k in range(-16, 25)))
ALPHA_TOLERANCE = 1e-3  # Spearman differences below this are noise, not a preference
HEURISTIC_SAMPLE = 2000  # architectures drawn from the family's default space for the heuristic
HEURISTIC_SEED = 0


@dataclass(frozen=True)
class ZeroLMParts:
    """The two sums ZeroLM combines; ``score(alpha) = ffn + alpha * attn``."""

    ffn: float
    attn: float

    def score(self, alpha: float) -> float:
        return self.ffn + alpha * self.attn


def capacity(weight: torch.Tensor) -> float:
    """``||W||_F^2 / min(m, n)``: the mean squared singular value of one matrix."""
    w = weight.detach().to(torch.float64)
    return float(w.pow(2).sum()) / min(w.shape)


def _per_head_capacity(weight: torch.Tensor, n_blocks: int, n_head: int) -> float:
    """Sum of ``capacity`` over row blocks: ``weight`` stacks ``n_blocks`` projections of ``n_head`` heads."""
    return blocks_capacity(weight, n_blocks * n_head)


def blocks_capacity(weight: torch.Tensor, blocks: int) -> float:
    """Sum of ``capacity`` over ``blocks`` equal row blocks of a matrix (one per head; 1: the whole matrix)."""
    rows, cols = weight.shape
    height = rows // blocks
    w = weight.detach().to(torch.float64).reshape(blocks, height, cols)
    return float(w.pow(2).sum()) / min(height, cols)


def weight_parts(model: nn.Module) -> ZeroLMParts:
    """``S_ffn`` and ``S_attn`` from a built model's weights (any init, trained or not).

    lts's causal LMs are read here; any other model (e.g. :class:`lts.flexibert.model.FlexiBertModel`)
    says which of its matrices are attention and which FFN through ``zerolm_matrices()``: two lists of
    ``(weight, blocks)``, each weight's capacity summed over ``blocks`` row blocks (one per head)."""
    if hasattr(model, "zerolm_matrices"):
        attn_mats, ffn_mats = model.zerolm_matrices()  # type: ignore[operator]
        return ZeroLMParts(ffn=sum(blocks_capacity(w, b) for w, b in ffn_mats),
                           attn=sum(blocks_capacity(w, b) for w, b in attn_mats))
    ffn = attn = 0.0
    gpt2 = isinstance(model.config, GPT2Config)  # type: ignore[attr-defined]
    for layer in model.layers:  # type: ignore[attr-defined]
        if gpt2:
            a = layer.attn
            attn += _per_head_capacity(a.c_attn.weight, 3, a.n_head) + capacity(a.c_proj.weight)
            ffn += capacity(layer.mlp.c_fc.weight) + capacity(layer.mlp.c_proj.weight)
        else:
            a = layer.dec_attn
            attn += _per_head_capacity(a.qkv_net.weight, 3, a.n_head)
            attn += _per_head_capacity(a.r_net.weight, 1, a.n_head) + capacity(a.o_net.weight)
            core = layer.pos_ff.CoreNet
            ffn += capacity(core[0].weight) + capacity(core[3].weight)
    return ZeroLMParts(ffn=ffn, attn=attn)


def expected_parts(cfg: Config, std: float = INIT_STD) -> ZeroLMParts:
    """``E[S_ffn]``, ``E[S_attn]`` at lts's init: each matrix contributes ``std^2 * max(m, n)``."""
    var = std * std
    d = cfg.d_model
    ffn = attn = 0
    for i in range(cfg.n_layer):
        h = cfg.n_head[i]
        if isinstance(cfg, GPT2Config):
            d_head, per_head_blocks, inner = d // h, 3, d
        else:
            d_head, per_head_blocks, inner = cfg.head_dim(i), 4, h * cfg.head_dim(i)  # q, k, v, r
        attn += per_head_blocks * h * max(d_head, d) + max(d, inner)
        ffn += 2 * max(d, cfg.d_inner[i])
    return ZeroLMParts(ffn=var * ffn, attn=var * attn)


def alpha_curve(parts: Sequence[ZeroLMParts], target: Sequence[float]) -> list[float]:
    """Spearman of ``ffn + alpha * attn`` with ``target`` for every alpha of ``ALPHA_GRID`` (-inf: undefined)."""
    ffn = np.array([p.ffn for p in parts])
    attn = np.array([p.attn for p in parts])
    target = np.asarray(target, dtype=float)
    rhos = [stats.spearmanr(ffn + alpha * attn, target).statistic for alpha in ALPHA_GRID]
    return [float(r) if np.isfinite(r) else -math.inf for r in rhos]


def best_alpha(parts: Sequence[ZeroLMParts], target: Sequence[float]) -> float:
    """The smallest grid alpha whose scores' Spearman with ``target`` (larger = better) is within
    ``ALPHA_TOLERANCE`` of the best: on a plateau the first point of it, not wherever rounding noise peaks."""
    rhos = alpha_curve(parts, target)
    best = max(rhos)
    return next(a for a, r in zip(ALPHA_GRID, rhos) if r >= best - ALPHA_TOLERANCE)


_best_alpha = best_alpha  # the name the LM-side callers and tests use


def self_parameter_alpha(configs: Sequence[Config]) -> float:
    """Data-free alpha: make ZeroLM rank ``configs`` most like their own decoder parameter counts."""
    return _best_alpha([expected_parts(c) for c in configs], np.array([decoder_params(c) for c in configs], float))


def fit_alpha(parts: Sequence[ZeroLMParts], valid_ppl: Sequence[float]) -> float:
    """Alpha fitted on a validation set: the grid value that best ranks lower perplexity first."""
    return _best_alpha(parts, -np.asarray(valid_ppl, dtype=float))


@lru_cache(maxsize=4)  # a pure function of the family (seeded sample): cached only for speed
def heuristic_alpha(family: str) -> float:
    """The registry's alpha for ``family``: :func:`self_parameter_alpha` on a seeded sample of its default space."""
    from lts.space.ranges import SearchSpace

    space = SearchSpace.default(family)
    rng = random.Random(HEURISTIC_SEED)
    return self_parameter_alpha([space.sample(rng) for _ in range(HEURISTIC_SAMPLE)])


def zerolm(model: nn.Module, alpha: float | None = None) -> float:
    """ZeroLM of a built model, with the family's heuristic alpha unless one is given."""
    parts = weight_parts(model)
    return parts.score(heuristic_alpha(model.config.family) if alpha is None else alpha)  # type: ignore[attr-defined]


def zerolm_expected(cfg: Config, alpha: float | None = None) -> float:
    """ZeroLM's expectation at lts's init, from the config alone (no model)."""
    return expected_parts(cfg).score(heuristic_alpha(cfg.family) if alpha is None else alpha)
