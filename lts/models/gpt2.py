"""GPT-2 with heterogeneous layers (LTS's ``hf_gpt2_flex``), in one readable file.

Pre-LayerNorm blocks as in GPT-2; layer ``i`` has ``n_head[i]`` heads of width
``d_model // n_head[i]`` and a feed-forward width ``d_inner[i]``. Input and output go through the
projected adaptive embedding / softmax of :mod:`lts.models.adaptive`. :meth:`GPT2Flex.hidden` also
takes what ``transformers`` passes when it generates (a KV cache, a padding mask, position ids), for
:mod:`lts.models.hf_modeling`; :meth:`GPT2Flex.forward` is lts's own interface.
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .adaptive import AdaptiveEmbedding, AdaptiveLogSoftmax, AdaptiveShape


class GPT2Shape(AdaptiveShape, Protocol):
    n_layer: int
    n_head: Sequence[int]
    d_inner: Sequence[int]
    tgt_len: int


class CausalSelfAttention(nn.Module):
    def __init__(self, d_model: int, n_head: int, dropout: float) -> None:
        super().__init__()
        self.n_head = n_head
        self.c_attn = nn.Linear(d_model, 3 * d_model)
        self.c_proj = nn.Linear(d_model, d_model)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, cache: Any = None,
                layer: int = 0) -> torch.Tensor:
        """``mask``: ``(B, 1, T, K)`` booleans (True: may attend), None for plain causal attention.
        ``cache``: a ``transformers`` Cache; this layer's keys and values are appended to it."""
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        if cache is not None:
            k, v = cache.update(k, v, layer)
        p = self.dropout if self.training else 0.0
        if mask is None and k.size(2) == T:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p)
        else:  # with mask None here, one new token: it sees every cached one
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        return self.c_proj(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, d_model: int, d_inner: int, dropout: float) -> None:
        super().__init__()
        self.c_fc = nn.Linear(d_model, d_inner)
        self.c_proj = nn.Linear(d_inner, d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.c_proj(F.gelu(self.c_fc(x), approximate="tanh")))


class Block(nn.Module):
    def __init__(self, d_model: int, n_head: int, d_inner: int, dropout: float) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_head, dropout)
        self.ln_2 = nn.LayerNorm(d_model)
        self.mlp = MLP(d_model, d_inner, dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, cache: Any = None,
                layer: int = 0) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), mask, cache, layer)
        return x + self.mlp(self.ln_2(x))


class GPT2Flex(nn.Module):
    """``forward(idx)`` gives ``(B, T, vocab)`` log-probs; ``forward(idx, targets)`` the mean NLL."""

    def __init__(self, cfg: GPT2Shape, dropout: float = 0.0) -> None:
        super().__init__()
        self.config = cfg
        self.wte = AdaptiveEmbedding(cfg, scale=False)
        self.wpe = nn.Embedding(cfg.tgt_len, cfg.d_model)
        self.drop = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            Block(cfg.d_model, h, di, dropout) for h, di in zip(cfg.n_head, cfg.d_inner)
        )
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.crit = AdaptiveLogSoftmax(cfg)
        self.tie_weights()

    def tie_weights(self) -> None:
        self.crit.tie_to(self.wte)

    def decoder_modules(self) -> list[nn.Module]:
        """The modules whose parameters are the LTS proxy (non-embedding parameters)."""
        return [self.layers, self.ln_f]

    def hidden(self, idx: torch.Tensor, position_ids: torch.Tensor | None = None,
               attention_mask: torch.Tensor | None = None, cache: Any = None) -> torch.Tensor:
        """The final LayerNorm's output ``(B, T, d_model)``. ``cache`` (a ``transformers`` Cache) holds
        the keys and values of earlier positions; ``attention_mask`` ``(B, past + T)`` marks padding (0)."""
        B, T = idx.shape
        past = cache.get_seq_length() if cache is not None else 0
        last = past + T - 1 if position_ids is None else int(position_ids.max()) if position_ids.numel() else 0
        if last >= self.config.tgt_len:
            raise ValueError(f"position {last} is past the model's {self.config.tgt_len} learned positions "
                             "(tgt_len): give at most tgt_len tokens in all")
        if position_ids is None:
            position_ids = torch.arange(past, past + T, device=idx.device)
        mask = None  # plain causal attention: no past, or one new token (which may see every key)
        padded = attention_mask is not None and not bool(attention_mask.all())
        if padded or (past and T > 1):
            K = past + T
            allowed = torch.ones(T, K, dtype=torch.bool, device=idx.device).tril(past)
            mask = allowed[None, None]
            if padded:
                mask = mask & attention_mask[:, None, None, -K:].bool()
                # a padding query that may see nothing would give NaN, and NaN leaks through its values
                mask = mask | allowed.triu(past)[None, None]  # each query's own position
        x = self.drop(self.wte(idx) + self.wpe(position_ids))
        for i, block in enumerate(self.layers):
            x = block(x, mask, cache, i)
        return self.ln_f(x)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        B, T = idx.shape
        if T > self.config.tgt_len:
            raise ValueError(f"sequence length {T} exceeds tgt_len={self.config.tgt_len}")
        h = self.hidden(idx).reshape(B * T, -1)
        if targets is not None:
            return self.crit.nll(h, targets.reshape(-1)).mean()
        return self.crit.log_prob(h).view(B, T, -1)
