"""The causal LM around a stack of multi-split reversible layers, and the ``darts`` family's model.

:class:`ReversibleLM` is shared by the search's supernet (mixed operations, :mod:`lts.darts.supernet`)
and by :class:`DartsLM`, the discrete architecture a search derives (one operation per split and
layer, a ``lts.space.config.DartsConfig``), which lts builds, measures and trains like the other
families: ``forward(idx)`` gives ``(B, T, vocab)`` log-probs, ``forward(idx, targets)`` the mean NLL.
"""

from __future__ import annotations

from typing import Protocol, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .darts_ops import make_op
from .reversible import ReversibleLayer, ReversibleStack


class DartsShape(Protocol):
    n_layer: int
    d_model: int
    n_split: int
    ops: Sequence[Sequence[str]]
    vocab_size: int
    tgt_len: int
    ffn_mult: int
    conv_heads: int


class ReversibleLM(nn.Module):
    """Token + learned position embedding, reversible stack, final LayerNorm, tied output layer."""

    def __init__(self, vocab_size: int, d_model: int, tgt_len: int, layers: Sequence[ReversibleLayer],
                 reconstruct: bool = True) -> None:
        super().__init__()
        self.tgt_len = tgt_len
        self.wte = nn.Embedding(vocab_size, d_model)
        self.wpe = nn.Embedding(tgt_len, d_model)
        self.stack = ReversibleStack(layers, reconstruct=reconstruct)
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size, bias=False)
        self.tie_weights()

    def tie_weights(self) -> None:
        self.head.weight = self.wte.weight

    def decoder_modules(self) -> list[nn.Module]:
        """The non-embedding modules: the LTS proxy counts these."""
        return [self.stack, self.ln_f]

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        B, T = idx.shape
        if T > self.tgt_len:
            raise ValueError(f"sequence length {T} exceeds tgt_len={self.tgt_len}")
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
        logits = self.head(self.ln_f(self.stack(x)))
        if targets is not None:
            return F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(-1))
        return F.log_softmax(logits, dim=-1)


class DartsLM(ReversibleLM):
    """The model of a :class:`DartsConfig`; ``dropout`` is accepted for the builder's signature only
    (reversible layers must be deterministic)."""

    def __init__(self, cfg: DartsShape, dropout: float = 0.0) -> None:
        c = cfg.d_model // cfg.n_split
        layers = [ReversibleLayer([make_op(name, c, cfg.ffn_mult, cfg.conv_heads) for name in ops])
                  for ops in cfg.ops]
        super().__init__(cfg.vocab_size, cfg.d_model, cfg.tgt_len, layers)
        self.config = cfg
