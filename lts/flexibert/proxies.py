"""Every training-free proxy of lts that applies to FlexiBERT encoders, behind the registry's interface.

The LM registry's proxies, carried over (each a :class:`lts.proxies.registry.ProxySpec`):

* ``total_params`` -- every parameter of the model as specified (embeddings + encoder: what the
  published "Number of Parameters" column counts, but with each record's hidden size and FFN widths);
  ``encoder_params`` -- the encoder layers only (the analogue of LTS's ``decoder_params``). Analytic.
* ``zerolm`` -- ZeroLM (:mod:`lts.proxies.zerolm`): ``S_ffn + alpha * S_attn`` over the encoder's
  matrices, "attention" being each layer's token-mixing operation (SA, LT or DSC; per-head blocks for
  the per-head projections). ``alpha`` is data-free: :func:`heuristic_alpha`, the self-parameter
  heuristic on a seeded sample of the FlexiBERT space. ``zerolm_ffn``, ``zerolm_attn``: the two terms;
  ``zerolm_analytic``: their expectation at the normal(0, 0.02) init, from the config.
* ``synflow``, ``snip``, ``grad_norm``, ``jacob_cov``, ``naswot``, ``head_confidence``: the functions
  of :mod:`lts.proxies.zero_cost`, unchanged, on the encoder through its proxy interface
  (:class:`lts.flexibert.model.FlexiBertModel`): the sums run over the encoder layers' parameters;
  the loss is ELECTRA's replaced-token detection; the output is the encoder's before its last
  LayerNorm; NASWOT reads every FFN hidden layer; head confidence every attention head (SA and the
  attending half of DSC; an encoder of LT layers only scores 0).

``flops`` is not carried over: an encoder's cost depends on the sequence length, and the Fourier layers'
FFT is not a matrix product, so there is no single per-token figure comparable across operations.

Token batch: 16 windows of 32 bytes of the shipped Austen corpus at seeded offsets (as the LM proxies
read), shifted to ids 1000-1255 of the 30522-token vocabulary so that the special ids ([PAD] = 0,
[MASK] = 103) keep their meaning. At init an id only selects a random embedding row, so what the batch
carries is the text's repetition structure. The benchmark's authors fed 128 sequences of 512 WordPiece
tokens of OpenWebText (and used the output sum, not a loss); neither the tokenizer nor the corpus is
available offline, and this batch is 128x cheaper.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any, Sequence

import numpy as np
import torch

from lts.errors import LtsError
from lts.flexibert.config import FlexiBertConfig
from lts.flexibert.model import build_flexibert
from lts.flexibert.params import encoder_params, total_params
from lts.proxies import zero_cost, zerolm
from lts.proxies.registry import ProxySpec, analytic, on_batch, on_model
from lts.proxies.tokens import Batch, corpus_batch

BYTE_OFFSET = 1000
HEURISTIC_SAMPLE = 2000
HEURISTIC_SEED = 0


@dataclass(frozen=True)
class EncoderProxySettings:
    """How the model-based proxies are computed (recorded with every result)."""

    batch: int = 16  # sequences
    seq_len: int = 32  # tokens per sequence
    seed: int = 0  # model init and batch offsets

    def __post_init__(self) -> None:
        if self.batch < 2:
            raise LtsError(f"the token batch needs at least 2 sequences (jacob_cov, naswot compare them), got {self.batch}")
        if not 1 <= self.seq_len <= 512:
            raise LtsError(f"sequence length must be 1..512 (the position table), got {self.seq_len}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def encoder_batch(settings: EncoderProxySettings, corpus: str | None = None) -> Batch:
    b = corpus_batch(settings.batch, settings.seq_len, settings.seed, corpus)
    return Batch(b.tokens[:, : settings.seq_len] + BYTE_OFFSET, f"{b.source} (ids + {BYTE_OFFSET})")


# -- ZeroLM on encoders --------------------------------------------------------------------
def zerolm_shapes(cfg: FlexiBertConfig) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
    """``(attention, ffn)`` lists of ``(rows, cols, blocks)``, the shapes of
    :meth:`FlexiBertModel.zerolm_matrices` written from the definitions (tests check they agree)."""
    d = cfg.hidden_size
    attn: list[tuple[int, int, int]] = []
    ffn: list[tuple[int, int, int]] = []
    for layer in cfg.layers:
        h = layer.num_operation_heads
        if layer.operation_type == "SA":
            attn += [(d, d, h)] * 3 + ([(d, d, 1)] if layer.operation_parameter == "WMA" else []) + [(d, d, 1)]
        elif layer.operation_type == "LT":
            attn.append((d, d, h))
        else:
            half, k, w = h // 2, int(layer.operation_parameter), d // 2
            attn += [(w, d, half)] * 3 + [(d, k, 1), (w, d, half), (half * k, w, half), (w, d, half), (d, d, 1)]
        f = layer.feed_forward_dimension
        ffn += [(f, d, 1)] + [(f, f, 1)] * (layer.num_feed_forward - 1) + [(d, f, 1)]
    return attn, ffn


def expected_parts(cfg: FlexiBertConfig, std: float = zerolm.INIT_STD) -> zerolm.ZeroLMParts:
    """ZeroLM's two sums in expectation at the init: each ``m x n`` block contributes ``std^2 max(m, n)``."""
    def total(shapes: list[tuple[int, int, int]]) -> float:
        return std * std * sum(b * max(r // b, c) for r, c, b in shapes)

    attn, ffn = zerolm_shapes(cfg)
    return zerolm.ZeroLMParts(ffn=total(ffn), attn=total(attn))


@lru_cache(maxsize=1)  # a pure function of the shipped space and the seed: cached for speed only
def heuristic_alpha() -> float:
    """Data-free alpha: the grid alpha whose analytic ZeroLM ranks a seeded sample of the FlexiBERT
    space most like the architectures' own encoder parameter counts (the registry's heuristic for the LMs)."""
    from lts.flexibert.space import FlexiBertSpace

    space = FlexiBertSpace.default()
    rng = random.Random(HEURISTIC_SEED)
    cfgs = [space.sample(rng) for _ in range(HEURISTIC_SAMPLE)]
    return zerolm.best_alpha([expected_parts(c) for c in cfgs], np.array([encoder_params(c) for c in cfgs], float))


# -- the registry --------------------------------------------------------------------------
_SPECS: tuple[ProxySpec, ...] = (
    ProxySpec("total_params", analytic(total_params), False, False, False, True,
              "all parameters as specified (embeddings + encoder; per-record hidden size and FFN widths)"),
    ProxySpec("encoder_params", analytic(encoder_params), False, False, False, True,
              "encoder-layer parameters (no embeddings), analytic"),
    ProxySpec("zerolm", on_model(lambda m: zerolm.weight_parts(m).score(heuristic_alpha())), True, False, False, True,
              "ZeroLM S_ffn + alpha*S_attn, data-free alpha (self-parameter heuristic on the space)"),
    ProxySpec("zerolm_ffn", on_model(lambda m: zerolm.weight_parts(m).ffn), True, False, False, True,
              "ZeroLM's FFN term alone"),
    ProxySpec("zerolm_attn", on_model(lambda m: zerolm.weight_parts(m).attn), True, False, False, True,
              "ZeroLM's token-mixing (attention/LT/DSC) term alone"),
    ProxySpec("zerolm_analytic", analytic(lambda c: expected_parts(c).score(heuristic_alpha())), False, False, False,
              True, "ZeroLM's expectation at the normal(0, 0.02) init, from the config"),
    ProxySpec("synflow", on_batch(zero_cost.synflow), True, True, True, True,
              "sum theta*dR/dtheta with |weights|, R = sum of the encoder output before its last LayerNorm"),
    ProxySpec("snip", on_batch(zero_cost.snip), True, True, True, True,
              "sum |theta * dL/dtheta| over encoder parameters, L = replaced-token detection"),
    ProxySpec("grad_norm", on_batch(zero_cost.grad_norm), True, True, True, True,
              "sum of the L2 norms of dL/dtheta over encoder parameter tensors"),
    ProxySpec("jacob_cov", on_batch(zero_cost.jacob_cov), True, True, True, True,
              "-sum log(l+k)+1/(l+k) over eigenvalues of the per-sequence input-Jacobian correlation"),
    ProxySpec("naswot", on_batch(zero_cost.naswot), True, True, False, True,
              "log|det K| of FFN activation-pattern agreements between sequences"),
    ProxySpec("head_confidence", on_batch(zero_cost.head_confidence), True, True, False, True,
              "sum over attention heads of the mean largest attention probability"),
)

PROXIES: dict[str, ProxySpec] = {s.name: s for s in _SPECS}


def select(spec: str | Sequence[str] | None) -> list[ProxySpec]:
    """Proxies named in a comma list or sequence (``None`` or empty: all of them, in order)."""
    if not spec:
        return list(_SPECS)
    names = [n.strip() for n in spec.split(",")] if isinstance(spec, str) else list(spec)
    out = []
    for n in names:
        if n and n not in PROXIES:
            raise LtsError(f"unknown FlexiBERT proxy {n!r}; choose from {', '.join(PROXIES)}")
        if n:
            out.append(PROXIES[n])
    return out


@dataclass(frozen=True)
class Scored:
    values: dict[str, float]
    seconds: dict[str, float]


def score(cfg: FlexiBertConfig, specs: Sequence[ProxySpec], tokens: torch.Tensor | None,
          settings: EncoderProxySettings) -> Scored:
    """Every proxy of ``specs`` for ``cfg``. Seconds: analytic proxies alone; a model-based proxy its
    own time plus the (seeded) model build, i.e. its cost when it is the only proxy computed."""
    values: dict[str, float] = {}
    seconds: dict[str, float] = {}
    model = None
    build_s = 0.0
    if any(s.needs_model for s in specs):
        t0 = time.perf_counter()
        model = build_flexibert(cfg, seed=settings.seed)
        build_s = time.perf_counter() - t0
    for spec in specs:
        if spec.needs_data and tokens is None:
            raise ValueError(f"proxy {spec.name} needs a batch of tokens")
        t0 = time.perf_counter()
        values[spec.name] = spec.fn(cfg, model, tokens)  # type: ignore[arg-type]
        seconds[spec.name] = time.perf_counter() - t0 + (build_s if spec.needs_model else 0.0)
    return Scored(values=values, seconds=seconds)
