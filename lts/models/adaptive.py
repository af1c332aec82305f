"""Projected adaptive input embedding and adaptive log-softmax (Baevski & Auli; Transformer-XL).

Both LTS families use these, and the parameter bookkeeping must match LTS's published counts, so
the layout follows NVIDIA's / Archai's ``mem_transformer`` exactly:

* ``div_val == 1``: one embedding table ``vocab x d_embed``; a projection ``d_model x d_embed``
  only when ``d_embed != d_model``; the softmax has one output layer over the whole vocabulary and,
  per cluster, a projection only when ``d_embed != d_model``.
* ``div_val > 1``: one table and one projection per cluster, cluster ``i`` of width
  ``d_embed // div_val**i`` (the projection exists even when the width equals ``d_model``).
* The softmax's output layers have biases; with clusters, the head carries ``n_clusters`` extra
  "cluster token" rows (``cluster_weight``, ``cluster_bias``).
* ``tie_weight`` shares output weights with the embedding tables; ``tie_projs[i]`` shares the
  softmax projection of cluster ``i`` with the embedding's.

The model files of ``lts.models`` import only torch and each other (relatively): a Hugging Face
folder saved by lts carries copies of them, so that ``trust_remote_code`` loads it without lts.
They read plain fields from the config they are given (an ``lts.space.config`` config or its
``transformers`` twin in :mod:`lts.models.hf_configs`), described by :class:`AdaptiveShape`.
"""

from __future__ import annotations

from typing import Protocol, Sequence

import torch
import torch.nn.functional as F
from torch import nn


class AdaptiveShape(Protocol):
    """The fields of a config the adaptive embedding and softmax read."""

    d_model: int
    d_embed: int
    div_val: int
    vocab_size: int
    cutoffs: Sequence[int]
    tie_weight: bool
    tie_projs: Sequence[bool]


def cluster_dims(cfg: AdaptiveShape) -> list[int]:
    """Embedding width of each adaptive cluster (head first); lts's configs validate that none is 0."""
    n = len(cfg.cutoffs) + 1
    return [cfg.d_embed] * n if cfg.div_val == 1 else [cfg.d_embed // (cfg.div_val**i) for i in range(n)]


def cluster_sizes(cfg: AdaptiveShape) -> list[int]:
    """Number of vocabulary entries in each adaptive cluster (head first)."""
    ends = [0, *cfg.cutoffs, cfg.vocab_size]
    return [b - a for a, b in zip(ends, ends[1:])]


class AdaptiveEmbedding(nn.Module):
    def __init__(self, cfg: AdaptiveShape, scale: bool) -> None:
        super().__init__()
        self.d_model = cfg.d_model
        self.div_val = cfg.div_val
        self.ends = [0, *cfg.cutoffs, cfg.vocab_size]
        self.scale = cfg.d_model**0.5 if scale else 1.0
        dims, sizes = cluster_dims(cfg), cluster_sizes(cfg)
        if cfg.div_val == 1:
            self.emb_layers = nn.ModuleList([nn.Embedding(cfg.vocab_size, cfg.d_embed)])
            projs = [nn.Parameter(torch.empty(cfg.d_model, cfg.d_embed))] if cfg.d_embed != cfg.d_model else []
        else:
            self.emb_layers = nn.ModuleList(nn.Embedding(n, d) for n, d in zip(sizes, dims))
            projs = [nn.Parameter(torch.empty(cfg.d_model, d)) for d in dims]
        self.emb_projs = nn.ParameterList(projs)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        if self.div_val == 1:
            embed = self.emb_layers[0](idx)
            if len(self.emb_projs):
                embed = F.linear(embed, self.emb_projs[0])
        else:
            flat = idx.reshape(-1)
            param = self.emb_projs[0]
            out = torch.zeros(flat.numel(), self.d_model, dtype=param.dtype, device=param.device)
            for i, (lo, hi) in enumerate(zip(self.ends, self.ends[1:])):
                where = ((flat >= lo) & (flat < hi)).nonzero().squeeze(1)
                if where.numel() == 0:
                    continue
                emb_i = F.linear(self.emb_layers[i](flat[where] - lo), self.emb_projs[i])
                out = out.index_copy(0, where, emb_i)
            embed = out.view(*idx.shape, self.d_model)
        return embed * self.scale if self.scale != 1.0 else embed


class AdaptiveLogSoftmax(nn.Module):
    def __init__(self, cfg: AdaptiveShape) -> None:
        super().__init__()
        self.tie_weight, self.tie_projs = bool(cfg.tie_weight), tuple(cfg.tie_projs)
        self.div_val = cfg.div_val
        self.ends = [0, *cfg.cutoffs, cfg.vocab_size]
        self.n_clusters = len(cfg.cutoffs)
        self.shortlist = self.ends[1]
        dims, sizes = cluster_dims(cfg), cluster_sizes(cfg)
        if self.n_clusters:
            self.cluster_weight = nn.Parameter(torch.empty(self.n_clusters, cfg.d_embed))
            self.cluster_bias = nn.Parameter(torch.empty(self.n_clusters))
        if cfg.div_val == 1:
            self.out_layers = nn.ModuleList([nn.Linear(cfg.d_embed, cfg.vocab_size)])
            need_proj = cfg.d_embed != cfg.d_model
            for i in range(self.n_clusters + 1):
                p = nn.Parameter(torch.empty(cfg.d_model, cfg.d_embed)) if need_proj else None
                self.register_parameter(f"out_proj_{i}", p)
        else:
            self.out_layers = nn.ModuleList(nn.Linear(d, n) for d, n in zip(dims, sizes))
            for i, d in enumerate(dims):
                self.register_parameter(f"out_proj_{i}", nn.Parameter(torch.empty(cfg.d_model, d)))

    def tied_names(self) -> list[tuple[str, str]]:
        """``(softmax parameter, embedding parameter)`` name pairs that :meth:`tie_to` shares."""
        pairs = []
        if self.tie_weight:
            pairs += [(f"out_layers.{i}.weight", f"emb_layers.{i}.weight") for i in range(len(self.out_layers))]
        for i, tie in enumerate(self.tie_projs):
            if tie and getattr(self, f"out_proj_{i}") is not None:
                pairs.append((f"out_proj_{i}", f"emb_projs.{0 if self.div_val == 1 else i}"))
        return pairs

    def tie_to(self, emb: AdaptiveEmbedding) -> None:
        for target, source in self.tied_names():
            parent, _, leaf = target.rpartition(".")
            setattr(self.get_submodule(parent), leaf, emb.get_parameter(source))

    # -- pieces -------------------------------------------------------------------------
    def _cluster(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        if self.div_val == 1:
            lo, hi = self.ends[i], self.ends[i + 1]
            w, b = self.out_layers[0].weight[lo:hi], self.out_layers[0].bias[lo:hi]
        else:
            w, b = self.out_layers[i].weight, self.out_layers[i].bias
        if i == 0 and self.n_clusters:
            w = torch.cat([w, self.cluster_weight], dim=0)
            b = torch.cat([b, self.cluster_bias], dim=0)
        return w, b, getattr(self, f"out_proj_{i}")

    @staticmethod
    def _logits(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor, proj: torch.Tensor | None) -> torch.Tensor:
        if proj is not None:
            h = h @ proj
        return F.linear(h, w, b)

    # -- public -------------------------------------------------------------------------
    def log_prob(self, hidden: torch.Tensor) -> torch.Tensor:
        """Full next-token log-probabilities, ``(N, d_model) -> (N, vocab)``."""
        head = torch.log_softmax(self._logits(hidden, *self._cluster(0)), dim=-1)
        if not self.n_clusters:
            return head
        parts = [head[:, : self.shortlist]]
        for i in range(1, self.n_clusters + 1):
            tail = torch.log_softmax(self._logits(hidden, *self._cluster(i)), dim=-1)
            parts.append(head[:, self.shortlist + i - 1, None] + tail)
        return torch.cat(parts, dim=1)

    def nll(self, hidden: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-token negative log-likelihood; tails are evaluated only for their own tokens."""
        head = torch.log_softmax(self._logits(hidden, *self._cluster(0)), dim=-1)
        if not self.n_clusters:
            return -head.gather(1, target[:, None]).squeeze(1)
        nll = torch.zeros_like(target, dtype=hidden.dtype)
        for i, (lo, hi) in enumerate(zip(self.ends, self.ends[1:])):
            where = ((target >= lo) & (target < hi)).nonzero().squeeze(1)
            if where.numel() == 0:
                continue
            t = (target[where] - lo)[:, None]
            if i == 0:
                lp = head[where].gather(1, t).squeeze(1)
            else:
                tail = torch.log_softmax(self._logits(hidden[where], *self._cluster(i)), dim=-1)
                lp = head[where, self.shortlist + i - 1] + tail.gather(1, t).squeeze(1)
            nll = nll.index_copy(0, where, -lp)
        return nll
