"""The proxies on FlexiBERT encoders: what differs from the language models' (the registry holds both).

The registry (:mod:`lts.proxies.registry`) declares, for every proxy, the families it applies to; the
``flexibert`` family gets:

* ``total_params`` -- every parameter of the model as specified (embeddings + encoder: what the
  published "Number of Parameters" column counts, but with each record's hidden size and FFN widths);
  ``encoder_params`` -- the encoder layers only (the analogue of LTS's ``decoder_params``). Analytic.
* ``zerolm`` -- ZeroLM (:mod:`lts.proxies.zerolm`): ``S_ffn + alpha * S_attn`` over the encoder's
  matrices, "attention" being each layer's token-mixing operation (SA, LT or DSC; per-head blocks for
  the per-head projections). ``alpha`` is data-free: :func:`heuristic_alpha`, the self-parameter
  heuristic on a seeded sample of the FlexiBERT space. ``zerolm_ffn``, ``zerolm_attn``: the two terms;
  ``zerolm_analytic``: their expectation at the normal(0, 0.02) init, from the config (:func:`expected_parts`).
* ``synflow``, ``snip``, ``grad_norm``, ``jacob_cov``, ``naswot``, ``head_confidence``: the functions
  of :mod:`lts.proxies.zero_cost`, the same entries as for the language models, on the encoder through
  its proxy interface (:class:`lts.flexibert.model.FlexiBertModel`): the sums run over the encoder
  layers' parameters; the loss is ELECTRA's replaced-token detection; the output is the encoder's
  before its last LayerNorm; NASWOT reads every FFN hidden layer; head confidence every attention head
  (SA and the attending half of DSC; an encoder of LT layers only scores 0).

``flops`` does not apply: an encoder's cost depends on the sequence length, and the Fourier layers'
FFT is not a matrix product, so there is no single per-token figure comparable across operations.

Token batch (:func:`encoder_batch`): 16 windows of 32 bytes of the shipped Austen corpus at seeded
offsets (as the LM proxies read), shifted to ids 1000-1255 of the 30522-token vocabulary so that the
special ids ([PAD] = 0, [MASK] = 103) keep their meaning. At init an id only selects a random embedding
row, so what the batch carries is the text's repetition structure. The benchmark's authors fed 128
sequences of 512 WordPiece tokens of OpenWebText (and used the output sum, not a loss); neither the
tokenizer nor the corpus is available offline, and this batch is 128x cheaper.
"""

from __future__ import annotations

import random
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from lts.flexibert.config import FlexiBertConfig
from lts.flexibert.params import encoder_params
from lts.proxies import zerolm
from lts.proxies.tokens import Batch, corpus_batch

if TYPE_CHECKING:
    from lts.proxies.compute import EncoderProxySettings

BYTE_OFFSET = 1000
HEURISTIC_SAMPLE = 2000
HEURISTIC_SEED = 0


def encoder_batch(settings: EncoderProxySettings, corpus: str | None = None) -> Batch:
    b = corpus_batch(settings.batch, settings.seq_len, settings.seed, corpus)
    return Batch(b.tokens[:, : settings.seq_len] + BYTE_OFFSET, f"{b.source} (ids + {BYTE_OFFSET})")


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
