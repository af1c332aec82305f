"""Analytic parameter counts of FlexiBERT encoders, from the config alone (no model is built).

Written from the operation definitions in :mod:`lts.flexibert.model` (weights ``m x n`` plus biases),
independently of the module code; the tests check that the two agree for every record of the shipped
benchmark, and that :func:`published_count` reproduces the benchmark's published "Number of Parameters"
column (which was computed with hidden size 256 and FFN width 1024 in every layer, whatever the record
said).

* ``embedding``: word, position and token-type tables (``embedding_size`` wide), their LayerNorm, and
  the projection to ``hidden_size`` when the two differ.
* ``operation``: the layer's token-mixing operation, its output projection and LayerNorm where it has them.
* ``ffn``: the stacked feed-forward layers, the down-projection and the output LayerNorm.
"""

from __future__ import annotations

from dataclasses import dataclass

from lts.flexibert.config import FlexiBertConfig, LayerConfig


def _linear(n_in: int, n_out: int, bias: bool = True) -> int:
    return n_in * n_out + (n_out if bias else 0)


def _norm(d: int) -> int:
    return 2 * d


def embedding_params(cfg: FlexiBertConfig) -> int:
    e, d = cfg.embedding_size, cfg.hidden_size
    tables = (cfg.vocab_size + cfg.max_position_embeddings + cfg.type_vocab_size) * e
    return tables + _norm(e) + (_linear(e, d) if e != d else 0)


def operation_params(layer: LayerConfig, d: int) -> int:
    h = layer.num_operation_heads
    op = layer.operation_type
    output = _linear(d, d) + _norm(d)  # projection of the mixed tokens back to d, residual, LayerNorm
    if op == "SA":
        qkv = 3 * _linear(d, d)
        wma = d * d if layer.operation_parameter == "WMA" else 0  # the bias-free matrix between Q and K
        return qkv + wma + output
    if op == "LT":
        return _linear(d, d)  # the input projection only: the transform has no weights, no output block
    # DSC: h/2 attention heads and h/2 convolution heads of width d/h each, concatenated back to d.
    k = int(layer.operation_parameter)
    half = h // 2
    width = half * (d // h)  # d / 2
    qkv = 3 * _linear(d, width)
    key_conv = d * k + d * width + width  # depthwise (no bias), pointwise (no bias), one shared bias
    kernel = _linear(width, half * k)  # per-position, per-head convolution kernels
    values = _linear(d, width)  # what the dynamic convolution mixes
    return qkv + key_conv + kernel + values + output


def ffn_params(layer: LayerConfig, d: int) -> int:
    f, n = layer.feed_forward_dimension, layer.num_feed_forward
    return _linear(d, f) + (n - 1) * _linear(f, f) + _linear(f, d) + _norm(d)


@dataclass(frozen=True)
class Breakdown:
    embedding: int
    operation: tuple[int, ...]
    ffn: tuple[int, ...]

    @property
    def encoder(self) -> int:
        return sum(self.operation) + sum(self.ffn)

    @property
    def total(self) -> int:
        return self.embedding + self.encoder


def breakdown(cfg: FlexiBertConfig) -> Breakdown:
    d = cfg.hidden_size
    return Breakdown(embedding=embedding_params(cfg),
                     operation=tuple(operation_params(l, d) for l in cfg.layers),
                     ffn=tuple(ffn_params(l, d) for l in cfg.layers))


def total_params(cfg: FlexiBertConfig) -> int:
    """Every parameter of the encoder model as specified (embeddings included; no pre-training head)."""
    return breakdown(cfg).total


def encoder_params(cfg: FlexiBertConfig) -> int:
    """Parameters of the encoder layers (the analogue of LTS's decoder parameters: no embeddings)."""
    return breakdown(cfg).encoder


ELECTRA_DEFAULT_HIDDEN = 256
ELECTRA_DEFAULT_FFN = 1024


def published_view(cfg: FlexiBertConfig) -> FlexiBertConfig:
    """The architecture the published proxy columns were computed on: hidden size 256 and FFN width
    1024 in every layer (ELECTRA-small's defaults), everything else as the record says."""
    return cfg.replace(hidden_size=ELECTRA_DEFAULT_HIDDEN).with_layers(feed_forward_dimension=ELECTRA_DEFAULT_FFN)


def published_count(cfg: FlexiBertConfig) -> int:
    """What the published "Number of Parameters" column holds for ``cfg``."""
    return total_params(published_view(cfg))
