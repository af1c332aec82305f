"""The candidate operations of the differentiable search, all causal, on one feature split.

Every operation maps ``(B, T, c)`` to ``(B, T, c)`` and never lets position ``t`` see ``t' > t``.
They follow the operation sets of the Evolved Transformer (So et al., ICML 2019) and DARTSformer
(Zhao et al., Findings of ACL 2021), made causal for decoder-only language modelling:

* ``attn<h>``      -- multi-head causal self-attention, ``h`` heads of ``c // h`` (Vaswani et al., 2017).
* ``conv<k>``      -- depthwise-separable causal convolution: a depthwise kernel of width ``k`` over
                      the current and ``k - 1`` previous positions, then a pointwise ``c x c`` linear
                      (Kaiser et al., 2017; ET's "sep conv k x 1").
* ``lightconv<k>`` -- lightweight convolution (Wu et al., ICLR 2019): linear ``c -> 2c`` + GLU, a
                      depthwise kernel of width ``k`` softmax-normalised over its width and shared by the
                      channels of each of ``conv_heads`` heads, then a ``c x c`` linear.
* ``dynconv<k>``   -- dynamic convolution (Wu et al., ICLR 2019): as lightconv, but the kernel of each
                      position is predicted from that position's input by a linear ``c -> heads * k``.
* ``glu``          -- gated linear unit (Dauphin et al., 2017): linear ``c -> 2c``, ``a * sigmoid(b)``.
* ``ffn``          -- position-wise feed-forward: linear ``c -> m c``, GELU, linear ``m c -> c``.
* ``identity`` and ``zero``.

All but ``identity`` and ``zero`` are wrapped as ``LayerNorm(H + op(H))`` (:class:`Wrapped`), so a
mixture of them stays on one scale whatever the architecture weights are.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def split_op(name: str) -> tuple[str, int]:
    """``"attn4"`` -> ``("attn", 4)``, ``"ffn"`` -> ``("ffn", 0)``. Names are checked by
    ``lts.space.config.parse_darts_op`` when a config is made; this file imports only torch (see
    :mod:`lts.models.adaptive`), so it only splits them."""
    kind = name.rstrip("0123456789")
    return kind, int(name[len(kind):] or 0)


class CausalAttention(nn.Module):
    def __init__(self, c: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(c, 3 * c)
        self.proj = nn.Linear(c, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, c = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(B, T, c))


def _causal_depthwise(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Depthwise conv over time of ``(B, T, c)`` with ``weight (c, 1, k)``; left padding keeps it causal."""
    k = weight.shape[-1]
    y = F.conv1d(F.pad(x.transpose(1, 2), (k - 1, 0)), weight, bias, groups=x.shape[-1])
    return y.transpose(1, 2)


class SepConv(nn.Module):
    def __init__(self, c: int, kernel: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv1d(c, c, kernel, groups=c)
        self.pointwise = nn.Linear(c, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(_causal_depthwise(x, self.depthwise.weight, self.depthwise.bias))


class LightConv(nn.Module):
    def __init__(self, c: int, kernel: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.inp = nn.Linear(c, 2 * c)
        self.kernel = nn.Parameter(torch.empty(heads, kernel))
        self.out = nn.Linear(c, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = F.glu(self.inp(x), dim=-1)
        c = u.shape[-1]
        w = self.kernel.softmax(dim=-1).repeat_interleave(c // self.heads, dim=0).unsqueeze(1)
        return self.out(_causal_depthwise(u, w, None))


class DynamicConv(nn.Module):
    def __init__(self, c: int, kernel: int, heads: int) -> None:
        super().__init__()
        self.heads, self.k = heads, kernel
        self.inp = nn.Linear(c, 2 * c)
        self.predict = nn.Linear(c, heads * kernel)
        self.out = nn.Linear(c, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = F.glu(self.inp(x), dim=-1)
        B, T, c = u.shape
        w = self.predict(u).view(B, T, self.heads, self.k).softmax(dim=-1)
        # window t covers positions t-k+1 .. t (left padding), so the kernel never sees the future
        win = F.pad(u, (0, 0, self.k - 1, 0)).unfold(1, self.k, 1)  # (B, T, c, k)
        win = win.reshape(B, T, self.heads, c // self.heads, self.k)
        y = torch.einsum("bthck,bthk->bthc", win, w).reshape(B, T, c)
        return self.out(y)


class GLU(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.inp = nn.Linear(c, 2 * c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.glu(self.inp(x), dim=-1)


class FFN(nn.Module):
    def __init__(self, c: int, mult: int) -> None:
        super().__init__()
        self.fc = nn.Linear(c, mult * c)
        self.proj = nn.Linear(mult * c, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.gelu(self.fc(x)))


class Wrapped(nn.Module):
    """``LayerNorm(H + op(H))``."""

    def __init__(self, op: nn.Module, c: int) -> None:
        super().__init__()
        self.op = op
        self.ln_out = nn.LayerNorm(c)  # "ln_" prefix: lts.models' init gives LayerNorms unit weights

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.ln_out(h + self.op(h))


class Identity(nn.Module):
    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h


class Zero(nn.Module):
    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(h)


def make_op(name: str, c: int, ffn_mult: int = 4, conv_heads: int = 4) -> nn.Module:
    """The module for operation ``name`` on a split of width ``c``, wrapped where it should be."""
    kind, size = split_op(name)
    if kind == "identity":
        return Identity()
    if kind == "zero":
        return Zero()
    op: nn.Module
    if kind == "attn":
        op = CausalAttention(c, size)
    elif kind == "conv":
        op = SepConv(c, size)
    elif kind == "lightconv":
        op = LightConv(c, size, conv_heads)
    elif kind == "dynconv":
        op = DynamicConv(c, size, conv_heads)
    elif kind == "glu":
        op = GLU(c)
    else:
        op = FFN(c, ffn_mult)
    return Wrapped(op, c)
