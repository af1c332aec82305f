"""Scoring one architecture with several proxies: build once (seeded), time each proxy.

Vocabulary reduction. LTS's published models have 50k (GPT-2) and 268k (Transformer-XL) token
vocabularies; building their embeddings and softmaxes for every proxy would dominate the cost on a
CPU, while every model-based proxy here concerns the decoder only (sums over decoder parameters,
the decoder's output, its attention and FFN activations). So a config whose vocabulary exceeds
``reduce_vocab_above`` is built with ``reduced_vocab`` tokens instead (adaptive cutoffs dropped),
which leaves the decoder -- and ``decoder_params`` -- unchanged. It still changes the loss the
gradient proxies differentiate (a softmax over fewer classes); ``bench/proxy_compare.py`` measures
how much the rankings move on a subset.

Seconds per architecture: the analytic proxies are timed alone; a model-based proxy is charged
its own time plus the model build (once per architecture), i.e. what it costs when it is the
only proxy computed. The token batch is read once for all architectures and is not charged.

FlexiBERT encoders (family ``flexibert``) go through the same :func:`score`, with
:class:`EncoderProxySettings` (no vocabulary reduction: the encoders' 30522 tokens are cheap, and the
batch's ids are already inside it) and :func:`lts.flexibert.model.build_flexibert` as the builder.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import torch

from lts.errors import LtsError
from lts.flexibert.config import FAMILY as FLEXIBERT
from lts.flexibert.model import build_flexibert
from lts.models import build_model
from lts.proxies.registry import ProxySpec
from lts.proxies.tokens import fit_to_vocab
from lts.space.config import Config, clip_cutoffs


@dataclass(frozen=True)
class ProxySettings:
    """How the model-based proxies are computed (recorded with every comparison)."""

    batch: int = 16  # sequences in the token batch
    seq_len: int = 32  # tokens read per sequence (one more is the last target)
    seed: int = 0  # model init and batch offsets
    reduce_vocab_above: int | None = 8192  # None: always build the full vocabulary
    reduced_vocab: int = 256  # the byte-level batch's vocabulary

    def __post_init__(self) -> None:
        _check_batch(self.batch)
        if self.seq_len < 1:
            raise LtsError(f"sequence length must be >= 1, got {self.seq_len}")
        if self.reduced_vocab < 2:
            raise LtsError(f"reduced vocabulary must be >= 2, got {self.reduced_vocab}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class EncoderProxySettings:
    """How the model-based proxies are computed on FlexiBERT encoders (recorded with every result)."""

    batch: int = 16  # sequences
    seq_len: int = 32  # tokens per sequence
    seed: int = 0  # model init and batch offsets

    def __post_init__(self) -> None:
        _check_batch(self.batch)
        if not 1 <= self.seq_len <= 512:
            raise LtsError(f"sequence length must be 1..512 (the position table), got {self.seq_len}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_batch(batch: int) -> None:
    if batch < 2:
        raise LtsError(f"the token batch needs at least 2 sequences (jacob_cov, naswot compare them), got {batch}")


@dataclass(frozen=True)
class Scored:
    values: dict[str, float]
    seconds: dict[str, float]
    reduced_vocab: bool


def proxy_config(cfg: Config, settings: ProxySettings) -> Config:
    """The config the model-based proxies build: the same decoder, maybe a smaller vocabulary."""
    limit = settings.reduce_vocab_above
    if limit is None or cfg.vocab_size <= limit:
        return cfg
    vocab = settings.reduced_vocab
    cutoffs = tuple(clip_cutoffs(cfg.cutoffs, vocab))
    return cfg.replace(vocab_size=vocab, cutoffs=cutoffs, tie_projs=cfg.tie_projs[: len(cutoffs) + 1])


def score(cfg: Any, specs: Sequence[ProxySpec], tokens: torch.Tensor | None,
          settings: ProxySettings | EncoderProxySettings) -> Scored:
    """Every proxy of ``specs`` for ``cfg`` (a language model's config, or a FlexiBERT encoder's with
    :class:`EncoderProxySettings`); data proxies need ``tokens`` ``(B, L)``."""
    values: dict[str, float] = {}
    seconds: dict[str, float] = {}
    model = None
    build_s = 0.0
    encoder = cfg.family == FLEXIBERT
    for spec in specs:
        if cfg.family not in spec.families:
            raise LtsError(f"proxy {spec.name} ({', '.join(spec.families)}) does not apply to a {cfg.family} config")
    built = cfg if encoder else proxy_config(cfg, settings)  # type: ignore[arg-type]
    if any(s.needs_model for s in specs):
        t0 = time.perf_counter()
        if encoder:
            model = build_flexibert(cfg, seed=settings.seed)  # in eval mode
        else:
            model = build_model(built, seed=settings.seed)
            model.eval()
        build_s = time.perf_counter() - t0
    # An encoder's batch is already inside its vocabulary (see lts.proxies.encoders.encoder_batch).
    batch = fit_to_vocab(tokens, built.vocab_size) if tokens is not None and not encoder else tokens
    for spec in specs:
        if spec.needs_data and batch is None:
            raise ValueError(f"proxy {spec.name} needs a batch of tokens")
        t0 = time.perf_counter()
        # The analytic proxies see the original config (their values must not depend on settings).
        values[spec.name] = spec.fn(cfg if not spec.needs_model else built, model, batch)
        seconds[spec.name] = time.perf_counter() - t0 + (build_s if spec.needs_model else 0.0)
    return Scored(values=values, seconds=seconds, reduced_vocab=built is not cfg)
