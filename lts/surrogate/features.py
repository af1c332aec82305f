"""Features of an architecture under a measurement protocol, computed from the config alone.

Two sets, both cheap (no model is built):

* ``COST_TERMS`` -- quantities the forward's time and memory are close to linear in: matrix-product
  FLOPs at the protocol's batch and sequence length, the attention score work (heads x T^2), the
  per-layer element-wise work, weights. The linear baseline fits non-negative weights on these.
* ``SHAPE`` -- the config's own numbers (layers, widths, heads, per-layer sums and spreads, decoder
  params, FLOPs per token): what the non-linear models see, in log scale.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from lts.errors import LtsError
from lts.space.counts import decoder_params, forward_flops, total_params
from lts.space.config import Config, DartsConfig, TransXLConfig

COST_TERMS = ("matmul_flops", "attn_scores", "elementwise", "layer_calls", "weights", "tokens")
SHAPE = ("n_layer", "d_model", "d_embed", "div_val", "heads_sum", "heads_max", "d_inner_sum", "d_inner_max",
         "d_inner_min", "decoder_params", "total_params", "flops_per_token", "seq_len", "batch", "mem_len")
FEATURES = COST_TERMS + SHAPE

_KEY = re.compile(r"-b(\d+)-s(default|\d+)-")


@dataclass(frozen=True)
class Shape:
    """Batch and sequence length of a protocol key (``torch-cpu-b1-sdefault-t1``)."""

    batch: int
    seq_len: int | None

    @classmethod
    def from_protocol(cls, key: str) -> "Shape":
        m = _KEY.search(key)
        if m is None:
            raise LtsError(f"cannot read batch and sequence length from protocol {key!r}")
        return cls(int(m.group(1)), None if m.group(2) == "default" else int(m.group(2)))


def features(cfg: Config, shape: Shape) -> dict[str, float]:
    if isinstance(cfg, DartsConfig):
        raise LtsError("cost surrogates cover the gpt2 and transxl families")
    T = shape.seq_len or cfg.tgt_len
    B = shape.batch
    mem = cfg.mem_len if isinstance(cfg, TransXLConfig) else 0
    at_T = cfg.replace(tgt_len=T)
    d = cfg.d_model
    heads = sum(cfg.n_head)
    return {
        "matmul_flops": float(B * forward_flops(at_T)),
        "attn_scores": float(B * heads * T * (T + mem)),  # softmax and masking over every score
        "elementwise": float(B * T * (cfg.n_layer * 6 * d + sum(cfg.d_inner))),  # norms, residuals, GELU
        "layer_calls": float(cfg.n_layer),  # fixed per-layer dispatch cost
        "weights": float(total_params(cfg)),
        "tokens": float(B * T),
        "n_layer": float(cfg.n_layer),
        "d_model": float(d),
        "d_embed": float(cfg.d_embed),
        "div_val": float(cfg.div_val),
        "heads_sum": float(heads),
        "heads_max": float(max(cfg.n_head)),
        "d_inner_sum": float(sum(cfg.d_inner)),
        "d_inner_max": float(max(cfg.d_inner)),
        "d_inner_min": float(min(cfg.d_inner)),
        "decoder_params": float(decoder_params(cfg)),
        "total_params": float(total_params(cfg)),
        "flops_per_token": float(forward_flops(at_T) / T),
        "seq_len": float(T),
        "batch": float(B),
        "mem_len": float(mem),
    }


def matrix(configs: list[Config], shape: Shape, names: tuple[str, ...] = FEATURES) -> np.ndarray:
    rows = [features(c, shape) for c in configs]
    return np.array([[r[n] for n in names] for r in rows], dtype=float)


def log1p_matrix(x: np.ndarray) -> np.ndarray:
    return np.log1p(np.maximum(x, 0.0))


__all__ = ["COST_TERMS", "SHAPE", "FEATURES", "Shape", "features", "matrix", "log1p_matrix"]
