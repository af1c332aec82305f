"""Analytic parameter and FLOP counts, from the config alone (no model is built).

``decoder_params`` is the LTS proxy: the non-embedding parameters, i.e. attention + feed-forward +
LayerNorms of the decoder (GPT-2's final ``ln_f`` included). It equals ``count_parameters`` of the
built model exactly (tests check hundreds of random configs) and LTS's published ``nonembedding``.

These functions sit on the search's hot path (tens of thousands of calls), so they are plain
integer arithmetic over the config's tuples.
"""

from __future__ import annotations

from lts.space import darts_counts
from lts.space.config import Config, DartsConfig, GPT2Config


def _attn_params(cfg: Config, layer: int) -> int:
    d = cfg.d_model
    if isinstance(cfg, GPT2Config):
        return 4 * d * d + 4 * d  # c_attn (d x 3d + 3d) and c_proj (d x d + d)
    inner = cfg.n_head[layer] * cfg.head_dim(layer)
    # qkv_net (3 inner x d) + r_net (inner x d) + o_net (d x inner), no biases; r_w_bias, r_r_bias
    return 5 * d * inner + 2 * inner


def breakdown(cfg: Config) -> dict[str, int]:
    """Parameter counts by part, named as LTS's ``params_summary.yaml`` where it has a name."""
    if isinstance(cfg, DartsConfig):
        return darts_counts.breakdown(cfg)
    d = cfg.d_model
    attn = sum(_attn_params(cfg, i) for i in range(cfg.n_layer))
    ffn = sum(2 * d * di + di + d for di in cfg.d_inner)
    layernorm = cfg.n_layer * 4 * d + (2 * d if isinstance(cfg, GPT2Config) else 0)

    dims, sizes = cfg.cluster_dims(), cfg.cluster_sizes()
    n_clusters = len(cfg.cutoffs)
    if cfg.div_val == 1:
        emb_tables = cfg.vocab_size * cfg.d_embed
        emb_projs = d * cfg.d_embed if cfg.d_embed != d else 0
        out_weights = 0 if cfg.tie_weight else cfg.vocab_size * cfg.d_embed
        # one softmax projection per cluster when widths differ; tied ones share the embedding's
        out_projs = 0 if cfg.d_embed == d else sum(d * cfg.d_embed for t in cfg.tie_projs if not t)
    else:
        emb_tables = sum(n * w for n, w in zip(sizes, dims))
        emb_projs = sum(d * w for w in dims)
        out_weights = 0 if cfg.tie_weight else emb_tables
        out_projs = sum(d * w for w, t in zip(dims, cfg.tie_projs) if not t)
    positions = cfg.tgt_len * d if isinstance(cfg, GPT2Config) else 0
    softmax = out_weights + out_projs + cfg.vocab_size + n_clusters * (cfg.d_embed + 1)
    return {
        "attn": attn,
        "ffn": ffn,
        "layernorm": layernorm,
        "embedding": emb_tables + emb_projs + positions,  # LTS's "AdaEmb"
        "softmax": softmax,  # untied output weights and projections, biases, cluster tokens
    }


def decoder_params(cfg: Config) -> int:
    """The LTS proxy: non-embedding (decoder) parameters."""
    if isinstance(cfg, DartsConfig):
        return darts_counts.decoder_params(cfg)
    d = cfg.d_model
    ffn = (2 * d + 1) * sum(cfg.d_inner) + cfg.n_layer * d
    if isinstance(cfg, GPT2Config):
        return cfg.n_layer * (4 * d * d + 4 * d + 4 * d) + ffn + 2 * d
    return sum(_attn_params(cfg, i) for i in range(cfg.n_layer)) + ffn + cfg.n_layer * 4 * d


def total_params(cfg: Config) -> int:
    """Every parameter of the built model, tied tensors counted once."""
    if isinstance(cfg, DartsConfig):
        return darts_counts.total_params(cfg)
    return sum(breakdown(cfg).values())


def forward_flops(cfg: Config) -> int:
    """Forward FLOPs of one segment (2 per multiply-add, matrix products only).

    Protocol: batch 1, a segment of ``tgt_len`` tokens (Transformer-XL: plus a full memory of
    ``mem_len``), full-vocabulary next-token log-probabilities for every position, all input
    tokens in the head cluster of the adaptive embedding. Attention counts the whole score matrix
    as computed (causal masking does not skip work). Element-wise ops are ignored. The test suite
    checks this against ``torch.utils.flop_counter`` on the built model.
    """
    if isinstance(cfg, DartsConfig):
        return darts_counts.forward_flops(cfg)
    d, T = cfg.d_model, cfg.tgt_len
    dims, sizes = cfg.cluster_dims(), cfg.cluster_sizes()
    has_proj = cfg.div_val != 1 or cfg.d_embed != d
    n_clusters = len(cfg.cutoffs)

    per_token = 2 * d * dims[0] if has_proj else 0  # input projection of head-cluster tokens
    per_segment = 0
    for i in range(cfg.n_layer):
        per_token += 4 * d * cfg.d_inner[i]
        if isinstance(cfg, GPT2Config):
            per_token += 8 * d * d
            per_segment += 4 * T * T * d  # QK^T and AV over T keys
        else:
            inner = cfg.n_head[i] * cfg.head_dim(i)
            K = T + cfg.mem_len
            per_token += 4 * d * inner  # q and o on the segment
            per_segment += 6 * d * inner * K  # k, v and r (r once per segment) over all K keys
            per_segment += 6 * T * K * inner  # content scores, position scores, weighted values
    outs = [sizes[0] + n_clusters] + sizes[1:]
    for w, n in zip(dims, outs):
        per_token += (2 * d * w if has_proj else 0) + 2 * w * n
    return T * per_token + per_segment


def flops_per_token(cfg: Config) -> int:
    """:func:`forward_flops` divided by the segment length, rounded to an integer."""
    return round(forward_flops(cfg) / cfg.tgt_len)


def proxy_values(cfg: Config) -> dict[str, int]:
    """The config-computable proxies, as stored with every architecture."""
    return {
        "decoder_params": decoder_params(cfg),
        "total_params": total_params(cfg),
        "flops": flops_per_token(cfg),
    }
