"""Transformer-XL (``mem_transformer``) with heterogeneous layers, in one readable file.

Relative positional attention with learned global content/position biases per layer
(``r_w_bias``, ``r_r_bias``; per layer because head counts differ between layers), post-LayerNorm,
and a recurrence memory of ``mem_len`` hidden states per layer. The parameter layout matches
NVIDIA's / Archai's ``RelPartialLearnableDecoderLayer``; queries are computed only for the new
segment (the reference projects the memory's queries too and throws them away), which changes no
parameter and saves a third of the memory's projection work.
"""

from __future__ import annotations

from typing import Protocol, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .adaptive import AdaptiveEmbedding, AdaptiveLogSoftmax, AdaptiveShape


class TransXLShape(AdaptiveShape, Protocol):
    n_layer: int
    n_head: Sequence[int]
    d_inner: Sequence[int]
    mem_len: int
    d_head: int  # -1: d_model // n_head[i] in layer i


def rel_shift(x: torch.Tensor) -> torch.Tensor:
    """Align scores ``(B, H, Q, K)`` indexed by relative distance to absolute key positions."""
    B, H, Q, K = x.shape
    padded = torch.cat([x.new_zeros(B, H, Q, 1), x], dim=-1).view(B, H, K + 1, Q)
    return padded[:, :, 1:].reshape(B, H, Q, K)


class RelMultiHeadAttn(nn.Module):
    def __init__(self, d_model: int, n_head: int, d_head: int, dropout: float) -> None:
        super().__init__()
        self.n_head, self.d_head = n_head, d_head
        inner = n_head * d_head
        self.qkv_net = nn.Linear(d_model, 3 * inner, bias=False)
        self.r_net = nn.Linear(d_model, inner, bias=False)
        self.o_net = nn.Linear(inner, d_model, bias=False)
        self.layer_norm = nn.LayerNorm(d_model)
        self.r_w_bias = nn.Parameter(torch.empty(n_head, d_head))
        self.r_r_bias = nn.Parameter(torch.empty(n_head, d_head))
        self.drop = nn.Dropout(dropout)
        self.scale = d_head**-0.5

    def forward(self, h: torch.Tensor, r: torch.Tensor, mem: torch.Tensor) -> torch.Tensor:
        B, Q, _ = h.shape
        H, D = self.n_head, self.d_head
        inner = H * D
        cat = torch.cat([mem, h], dim=1) if mem.size(1) else h
        K = cat.size(1)
        w = self.qkv_net.weight
        q = F.linear(h, w[:inner]).view(B, Q, H, D)
        k, v = F.linear(cat, w[inner:]).view(B, K, 2, H, D).unbind(2)
        r_k = self.r_net(r).view(K, H, D)

        ac = torch.einsum("bqhd,bkhd->bhqk", q + self.r_w_bias, k)
        bd = rel_shift(torch.einsum("bqhd,khd->bhqk", q + self.r_r_bias, r_k))
        score = (ac + bd) * self.scale
        mlen = K - Q
        mask = torch.ones(Q, K, dtype=torch.bool, device=h.device).triu(1 + mlen)
        prob = self.drop(torch.softmax(score.masked_fill(mask, float("-inf")), dim=-1))
        out = torch.einsum("bhqk,bkhd->bqhd", prob, v).reshape(B, Q, inner)
        return self.layer_norm(h + self.drop(self.o_net(out)))


class PositionwiseFF(nn.Module):
    def __init__(self, d_model: int, d_inner: int, dropout: float) -> None:
        super().__init__()
        self.CoreNet = nn.Sequential(
            nn.Linear(d_model, d_inner), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(d_inner, d_model), nn.Dropout(dropout),
        )
        self.layer_norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer_norm(x + self.CoreNet(x))


class DecoderLayer(nn.Module):
    def __init__(self, d_model: int, n_head: int, d_head: int, d_inner: int, dropout: float) -> None:
        super().__init__()
        self.dec_attn = RelMultiHeadAttn(d_model, n_head, d_head, dropout)
        self.pos_ff = PositionwiseFF(d_model, d_inner, dropout)

    def forward(self, h: torch.Tensor, r: torch.Tensor, mem: torch.Tensor) -> torch.Tensor:
        return self.pos_ff(self.dec_attn(h, r, mem))


class MemTransformerLM(nn.Module):
    """``forward(idx, targets=None, mems=None) -> (log-probs or mean NLL, new mems)``.

    ``mems`` is a list of ``n_layer`` tensors ``(B, <=mem_len, d_model)`` (each layer's input
    history); ``None`` starts with an empty memory.
    """

    # read as .weight (sliced), not called: int8 quantization leaves them fp32 (lts.models.quantize)
    RAW_WEIGHT_LINEARS = ("qkv_net",)

    def __init__(self, cfg: TransXLShape, dropout: float = 0.0) -> None:
        super().__init__()
        self.config = cfg
        self.word_emb = AdaptiveEmbedding(cfg, scale=True)
        self.drop = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            DecoderLayer(cfg.d_model, h, cfg.d_model // h if cfg.d_head == -1 else cfg.d_head, di, dropout)
            for h, di in zip(cfg.n_head, cfg.d_inner)
        )
        self.crit = AdaptiveLogSoftmax(cfg)
        self.tie_weights()

    def tie_weights(self) -> None:
        self.crit.tie_to(self.word_emb)

    def decoder_modules(self) -> list[nn.Module]:
        return [self.layers]

    def init_mems(self, batch: int, length: int = 0) -> list[torch.Tensor]:
        p = self.crit.out_layers[0].bias
        return [p.new_zeros(batch, length, self.config.d_model) for _ in self.layers]

    def _pos_emb(self, klen: int, device: torch.device) -> torch.Tensor:
        # computed, not a buffer: a non-persistent buffer is lost when a model is built on the meta
        # device and loaded (transformers' from_pretrained), and this costs microseconds
        d = self.config.d_model
        inv_freq = 1.0 / (10000 ** (torch.arange(0.0, d, 2.0, device=device) / d))
        pos = torch.arange(klen - 1, -1, -1.0, device=device)
        sinusoid = torch.outer(pos, inv_freq)
        return torch.cat([sinusoid.sin(), sinusoid.cos()], dim=-1)

    def hidden(self, idx: torch.Tensor, mems: list[torch.Tensor] | None = None
               ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The last layer's output ``(B, Q, d_model)`` (before dropout) and the new memory."""
        B, Q = idx.shape
        if mems is None:
            mems = self.init_mems(B)
        klen = mems[0].size(1) + Q
        h = self.drop(self.word_emb(idx))
        r = self.drop(self._pos_emb(klen, idx.device).to(h.dtype))
        new_mems = []
        for layer, mem in zip(self.layers, mems):
            if self.config.mem_len:
                new_mems.append(torch.cat([mem, h], dim=1)[:, -self.config.mem_len:].detach())
            h = layer(h, r, mem)
        return h, (new_mems if self.config.mem_len else mems)

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        mems: list[torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        B, Q = idx.shape
        h, new_mems = self.hidden(idx, mems)
        hidden = self.drop(h).reshape(B * Q, -1)
        if targets is not None:
            return self.crit.nll(hidden, targets.reshape(-1)).mean(), new_mems
        return self.crit.log_prob(hidden).view(B, Q, -1), new_mems
