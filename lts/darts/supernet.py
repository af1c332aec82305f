"""The supernet of the differentiable search: every candidate operation at every split and layer.

``G_k`` of each reversible layer is a DARTS mixed operation, ``sum_o softmax(alpha_k)_o * o(H_k)``
(Liu et al., ICLR 2019), with its own architecture weights ``alpha`` (parameters named ``*.alpha``).
The strongest operation of each mixed operation, zero excluded (as DARTS derives), gives the
discrete :class:`lts.space.config.DartsConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from lts.errors import ConfigError
from lts.models import init_weights
from lts.models.darts import ReversibleLM
from lts.models.darts_ops import make_op
from lts.models.reversible import ReversibleLayer
from lts.darts.defaults import DEFAULT_OPS  # noqa: F401  re-exported: defined without torch for the CLI
from lts.space.config import DartsConfig


@dataclass(frozen=True)
class SupernetSpec:
    """The shape of the supernet; everything a derived architecture inherits besides its operations."""

    n_layer: int = 4
    d_model: int = 128
    n_split: int = 2
    candidates: tuple[str, ...] = DEFAULT_OPS
    vocab_size: int = 2048
    tgt_len: int = 64
    ffn_mult: int = 4
    conv_heads: int = 4

    def __post_init__(self) -> None:
        cands = tuple(self.candidates)
        object.__setattr__(self, "candidates", cands)
        if len(cands) < 2 or len(set(cands)) != len(cands):
            raise ConfigError(f"candidates must name at least 2 distinct operations, got {list(cands)}")
        # a config made of each candidate checks n_layer, widths and head/kernel divisibility at once
        for c in cands:
            self.config_with([[c] * self.n_split] * self.n_layer)

    def config_with(self, ops: Any) -> DartsConfig:
        return DartsConfig(n_layer=self.n_layer, d_model=self.d_model, n_split=self.n_split, ops=ops,
                           vocab_size=self.vocab_size, tgt_len=self.tgt_len, ffn_mult=self.ffn_mult,
                           conv_heads=self.conv_heads)

    def to_dict(self) -> dict[str, Any]:
        return {"n_layer": self.n_layer, "d_model": self.d_model, "n_split": self.n_split,
                "candidates": list(self.candidates), "vocab_size": self.vocab_size, "tgt_len": self.tgt_len,
                "ffn_mult": self.ffn_mult, "conv_heads": self.conv_heads}


class MixedOp(nn.Module):
    def __init__(self, candidates: tuple[str, ...], c: int, ffn_mult: int, conv_heads: int) -> None:
        super().__init__()
        self.names = candidates
        self.ops = nn.ModuleList(make_op(n, c, ffn_mult, conv_heads) for n in candidates)
        self.alpha = nn.Parameter(torch.zeros(len(candidates)))
        self._skip = [n == "zero" for n in candidates]  # zero adds nothing: not computed

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        w = self.alpha.softmax(dim=0)
        out = torch.zeros_like(h)
        for i, op in enumerate(self.ops):
            if not self._skip[i]:
                out = out + w[i] * op(h)
        return out


@dataclass
class Supernet:
    spec: SupernetSpec
    model: ReversibleLM
    mixed: list[list[MixedOp]] = field(default_factory=list)  # [layer][split]

    def arch_parameters(self) -> list[nn.Parameter]:
        return [m.alpha for layer in self.mixed for m in layer]

    def weight_parameters(self) -> list[nn.Parameter]:
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.model.parameters() if id(p) not in arch]

    def weights(self) -> list[list[list[float]]]:
        """softmax(alpha) of every mixed operation, ``[layer][split][candidate]``."""
        with torch.no_grad():
            return [[[round(float(v), 6) for v in m.alpha.softmax(0)] for m in layer] for layer in self.mixed]

    def derive(self) -> DartsConfig:
        """The strongest non-zero operation of each split and layer."""
        ops = []
        with torch.no_grad():
            for layer in self.mixed:
                row = []
                for m in layer:
                    w = m.alpha.softmax(0).tolist()
                    best = max((i for i, n in enumerate(m.names) if n != "zero"), key=lambda i: (w[i], -i))
                    row.append(m.names[best])
                ops.append(row)
        return self.spec.config_with(ops)


def set_trainable(net: Supernet, part: str) -> None:
    """Gradients for ``"weights"`` or ``"arch"`` only: the other part's backward work is skipped."""
    arch = part == "arch"
    for p in net.arch_parameters():
        p.requires_grad_(arch)
    for p in net.weight_parameters():
        p.requires_grad_(not arch)


def build_supernet(spec: SupernetSpec, seed: int = 0, reconstruct: bool = True) -> Supernet:
    """The supernet with lts's seeded init (architecture weights start equal: alpha = 0)."""
    c = spec.d_model // spec.n_split
    mixed = [[MixedOp(spec.candidates, c, spec.ffn_mult, spec.conv_heads) for _ in range(spec.n_split)]
             for _ in range(spec.n_layer)]
    layers = [ReversibleLayer(row) for row in mixed]
    model = ReversibleLM(spec.vocab_size, spec.d_model, spec.tgt_len, layers, reconstruct=reconstruct)
    init_weights(model, seed)
    with torch.no_grad():
        for row in mixed:
            for m in row:
                m.alpha.zero_()
    return Supernet(spec=spec, model=model, mixed=mixed)
