"""Analytic parameter and FLOP counts of the ``darts`` family (:class:`lts.space.config.DartsConfig`).

Same conventions as :mod:`lts.space.counts`: decoder = the reversible stack and the final
LayerNorm; the embedding is the token table (tied to the output layer) and the learned positions;
FLOPs count matrix products and convolutions at 2 per multiply-add over one ``tgt_len`` segment,
including the full-vocabulary output layer.
"""

from __future__ import annotations

from lts.space.config import DartsConfig, parse_darts_op


def op_params(name: str, c: int, ffn_mult: int = 4, conv_heads: int = 4) -> int:
    """Parameters of :func:`lts.models.darts_ops.make_op` (``name``, ``c``) (tests check built modules)."""
    kind, size = parse_darts_op(name)
    if kind in ("identity", "zero"):
        return 0
    ln = 2 * c
    if kind == "attn":
        body = 4 * c * c + 4 * c
    elif kind == "conv":
        body = c * size + c + c * c + c
    elif kind == "lightconv":
        body = 2 * c * c + 2 * c + conv_heads * size + c * c + c
    elif kind == "dynconv":
        body = 2 * c * c + 2 * c + (c + 1) * conv_heads * size + c * c + c
    elif kind == "glu":
        body = 2 * c * c + 2 * c
    else:
        body = 2 * ffn_mult * c * c + ffn_mult * c + c
    return body + ln


def _ops(cfg: DartsConfig) -> list[str]:
    return [name for layer in cfg.ops for name in layer]


def breakdown(cfg: DartsConfig) -> dict[str, int]:
    c, d = cfg.split_width, cfg.d_model
    attn = ffn = layernorm = 0
    for name in _ops(cfg):
        n = op_params(name, c, cfg.ffn_mult, cfg.conv_heads)
        if n == 0:
            continue
        layernorm += 2 * c  # each wrapped operation's LayerNorm(H + op(H))
        if name.startswith("attn"):
            attn += n - 2 * c
        else:
            ffn += n - 2 * c  # every other mixing operation is filed under "ffn"
    return {"attn": attn, "ffn": ffn, "layernorm": layernorm + 2 * d,
            "embedding": cfg.vocab_size * d + cfg.tgt_len * d, "softmax": 0}


def decoder_params(cfg: DartsConfig) -> int:
    c = cfg.split_width
    return sum(op_params(n, c, cfg.ffn_mult, cfg.conv_heads) for n in _ops(cfg)) + 2 * cfg.d_model


def total_params(cfg: DartsConfig) -> int:
    return decoder_params(cfg) + (cfg.vocab_size + cfg.tgt_len) * cfg.d_model


def _op_flops_per_token(kind: str, size: int, c: int, cfg: DartsConfig) -> int:
    if kind == "attn":
        return 8 * c * c
    if kind == "conv":
        return 2 * c * size + 2 * c * c
    if kind == "lightconv":
        return 4 * c * c + 2 * c * size + 2 * c * c
    if kind == "dynconv":
        return 4 * c * c + 2 * c * cfg.conv_heads * size + 2 * c * size + 2 * c * c
    if kind == "glu":
        return 4 * c * c
    if kind == "ffn":
        return 4 * cfg.ffn_mult * c * c
    return 0


def forward_flops(cfg: DartsConfig) -> int:
    c, T = cfg.split_width, cfg.tgt_len
    per_token, per_segment = 2 * cfg.d_model * cfg.vocab_size, 0
    for name in _ops(cfg):
        kind, size = parse_darts_op(name)
        per_token += _op_flops_per_token(kind, size, c, cfg)
        if kind == "attn":
            per_segment += 4 * T * T * c  # QK^T and AV over all T keys, as computed
    return T * per_token + per_segment
