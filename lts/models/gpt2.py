"""GPT-2 with heterogeneous layers (LTS's ``hf_gpt2_flex``), in one readable file.

Pre-LayerNorm blocks as in GPT-2; layer ``i`` has ``n_head[i]`` heads of width
``d_model // n_head[i]`` and a feed-forward width ``d_inner[i]``. Input and output go through the
projected adaptive embedding / softmax of :mod:`lts.models.adaptive`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lts.models.adaptive import AdaptiveEmbedding, AdaptiveLogSoftmax
from lts.space.config import GPT2Config


class CausalSelfAttention(nn.Module):
    def __init__(self, d_model: int, n_head: int, dropout: float) -> None:
        super().__init__()
        self.n_head = n_head
        self.c_attn = nn.Linear(d_model, 3 * d_model)
        self.c_proj = nn.Linear(d_model, d_model)
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0
        )
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT2Flex(nn.Module):
    """``forward(idx)`` gives ``(B, T, vocab)`` log-probs; ``forward(idx, targets)`` the mean NLL."""

    def __init__(self, cfg: GPT2Config, dropout: float = 0.0) -> None:
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

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        B, T = idx.shape
        if T > self.config.tgt_len:
            raise ValueError(f"sequence length {T} exceeds tgt_len={self.config.tgt_len}")
        pos = torch.arange(T, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))
        for block in self.layers:
            x = block(x)
        h = self.ln_f(x).reshape(B * T, -1)
        if targets is not None:
            return self.crit.nll(h, targets.reshape(-1)).mean()
        return self.crit.log_prob(h).view(B, T, -1)
