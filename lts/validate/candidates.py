"""Which architectures a validation run trains: sampled from a space, or a search run's frontier.

A trained model's vocabulary and context must match the tokenizer and the recipe, so validation
spaces always take ``vocab_size`` from the tokenizer and ``tgt_len`` from the recipe's sequence
length, with no adaptive-softmax cutoffs unless the space file sets some below the vocabulary.
Architectures taken from a search run are *retargeted* the same way: the decoder (layers, widths,
heads, embedding width) is kept, so ``decoder_params`` is unchanged, while the vocabulary-dependent
parts follow the tokenizer. The result rows keep the original architecture id.

Sampling spreads the candidates over the space's range of decoder parameters by default
(``stratified``): many seeded draws are sorted by log decoder parameters and ``n`` are taken at
evenly spaced quantiles. A rank correlation measured on twelve models is only informative when
the models differ; ``random`` keeps plain independent draws (as LTS's published random sets).
"""

from __future__ import annotations

import math
import random
from typing import Any, Mapping, Sequence

from lts.errors import LtsError
from lts.space.counts import decoder_params
from lts.space.config import Config, DartsConfig, clip_cutoffs, config_from_dict
from lts.space.ranges import SearchSpace

SAMPLING = ("stratified", "cells", "random")
_POOL_FACTOR = 40  # stratified sampling draws this many candidates per architecture kept

# Small models that a fixed 2000-step recipe trains to a stable ranking in minutes each on one core,
# with decoder parameters from 0.03 M to 1.3 M. The embedding is the same for every candidate
# (d_embed 128, no adaptive clusters), so what differs is exactly what decoder_params counts: with a
# 2048-token vocabulary the embedding (262 k parameters) is as large as many decoders, and letting
# it vary made it a main driver of perplexity (1-layer, d_model 64 models after 1000 steps: 97-101
# with d_embed 64, 74 with d_embed 128). Widths stop at 128, the widest the single learning rate
# suits: a 1-layer d_model 192 model did best at half the rate that suits d_model 128.
_VALIDATION_DIMS: dict[str, Any] = {
    "n_layer": {"min": 1, "max": 4}, "d_model": [64, 96, 128], "d_embed": [128], "div_val": [1],
    "n_head": [2, 4], "d_inner": {"min": 128, "max": 1024, "step": 128},
}
VALIDATION_SPACES: dict[str, dict[str, Any]] = {
    "gpt2": {"family": "gpt2", "name": "validation-gpt2", **_VALIDATION_DIMS},
    "transxl": {"family": "transxl", "name": "validation-transxl", **_VALIDATION_DIMS},
}


def validation_space(spec: Mapping[str, Any] | str, vocab_size: int, seq_len: int) -> SearchSpace:
    """A space whose configs fit the tokenizer (``vocab_size``) and the recipe (``seq_len``).

    ``spec`` is a family name (its small validation space) or a space dict (a space file's content).
    """
    if isinstance(spec, str):
        if spec not in VALIDATION_SPACES:
            raise LtsError(f"no validation space for family {spec!r}; choose from {', '.join(VALIDATION_SPACES)}")
        spec = VALIDATION_SPACES[spec]
    spec = dict(spec)
    spec["vocab_size"] = vocab_size
    spec["cutoffs"] = clip_cutoffs(spec.get("cutoffs", []), vocab_size)
    spec.pop("tie_projs", None)  # follows the number of cutoffs
    spec["tgt_len"] = seq_len
    if spec.get("family") == "transxl":
        spec.setdefault("mem_len", seq_len)
    return SearchSpace.from_dict(spec)


def choose(space: SearchSpace, n: int, seed: int, sampling: str = "stratified") -> list[Config]:
    """``n`` distinct architectures of ``space``, reproducible from ``seed``."""
    if sampling not in SAMPLING:
        raise LtsError(f"sampling must be one of {', '.join(SAMPLING)}, got {sampling!r}")
    rng = random.Random(seed)
    want = n * (1 if sampling == "random" else _POOL_FACTOR)
    seen: dict[str, Config] = {}
    stale = 0  # draws since the last new architecture: a small space runs out long before `want`
    while len(seen) < want and stale < 2000:
        cfg = space.sample(rng)
        stale = stale + 1 if cfg.arch_id in seen else 0
        seen.setdefault(cfg.arch_id, cfg)
    pool = list(seen.values())
    if len(pool) < n:
        raise LtsError(f"the space has only {len(pool)} distinct architectures; asked for {n}")
    if sampling == "random":
        return pool[:n]
    if sampling == "cells":
        return spread_cells(pool, n)
    return spread(pool, n)


def spread(configs: Sequence[Config], n: int) -> list[Config]:
    """``n`` of ``configs`` at evenly spaced quantiles of log decoder parameters (smallest first)."""
    return _spread(configs, n, window=1)


def _cell(cfg: Config) -> tuple[int, int]:
    return (cfg.n_layer, cfg.d_model)


def spread_cells(configs: Sequence[Config], n: int) -> list[Config]:
    """Like :func:`spread`, and each pick also favours a (depth, width) cell used least so far.

    A size-only spread can fill a size range with one shape (in the default validation space, the
    largest models are all 3-4 layers of d_model 128), and then the correlation cannot tell "more
    parameters" from "deeper" or "wider". Here each evenly spaced size target considers the few
    candidates nearest to it (``len(pool) / 2n``, at least 3) and takes the one whose
    (n_layer, d_model) cell has been picked fewest times, the nearest on ties.
    """
    return _spread(configs, n, window=max(3, len(configs) // (2 * n)))


def _spread(configs: Sequence[Config], n: int, window: int) -> list[Config]:
    """Evenly spaced targets over log decoder parameters; each takes, of the ``window``
    unused candidates nearest to it, the one of the least-used (depth, width) cell (nearest, then
    smaller, on ties). A window of 1 is the plain nearest-to-target spread."""
    ranked = sorted(configs, key=lambda c: (decoder_params(c), c.arch_id))
    if n >= len(ranked):
        return ranked
    if n == 1:
        return [ranked[len(ranked) // 2]]
    logs = [math.log(decoder_params(c)) for c in ranked]
    lo, hi = logs[0], logs[-1]
    uses: dict[tuple[int, int], int] = {}
    chosen: list[int] = []
    for k in range(n):
        target = lo + (hi - lo) * k / (n - 1)
        free = sorted((i for i in range(len(ranked)) if i not in chosen), key=lambda i: (abs(logs[i] - target), i))
        pick = min(free[:window], key=lambda i: (uses.get(_cell(ranked[i]), 0), abs(logs[i] - target), i))
        uses[_cell(ranked[pick])] = uses.get(_cell(ranked[pick]), 0) + 1
        chosen.append(pick)
    return [ranked[i] for i in sorted(chosen)]


def retarget(cfg: Config, vocab_size: int, seq_len: int) -> Config:
    """``cfg`` with the tokenizer's vocabulary and the recipe's context; the decoder is unchanged."""
    data = cfg.to_dict()
    data["vocab_size"] = vocab_size
    if isinstance(cfg, DartsConfig):  # no adaptive clusters to clip
        data["tgt_len"] = seq_len
        return config_from_dict(data)
    cutoffs = clip_cutoffs(cfg.cutoffs, vocab_size)
    data["cutoffs"] = cutoffs
    data["tie_projs"] = list(cfg.tie_projs)[: len(cutoffs) + 1]
    data["tgt_len"] = seq_len  # GPT-2 learns one position per slot: it must cover the sequence
    return config_from_dict(data)
