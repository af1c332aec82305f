"""A PyTorch FlexiBERT encoder built from one benchmark record, and the interface the proxies use.

The structure follows the benchmark's own PyTorch model code (Serianni & Kalita's ``modeling_electra.py``,
an ELECTRA encoder modified for the FlexiBERT space; github.com/aaronserianni/training-free-nas), with
two differences that the records ask for: the hidden size is the record's ``hidden_size`` and each
layer's FFN is ``feed_forward_dimension`` wide (that code used ELECTRA-small's 256 and 1024 for every
record; see :func:`lts.flexibert.params.published_view`). Our code is written from the definitions
below, not copied. Post-LayerNorm blocks, GELU (erf form), LayerNorm eps 1e-12, no dropout.

Embeddings (ELECTRA): word + position + token-type tables of width 128, LayerNorm, then a linear
projection to ``hidden_size`` when it is not 128.

Each layer is ``x -> op(x) -> FFN``; ``d`` = hidden size, ``h`` = ``num_operation_heads``, ``d/h`` per head.

* **SA / SDP** -- scaled dot-product self-attention (Vaswani et al., 2017): per-head
  ``softmax(Q K^T / sqrt(d/h)) V`` with ``Q, K, V`` linear maps ``d -> d``; then an output projection
  ``d -> d``, the residual and a LayerNorm (BERT's self-output block).
* **SA / WMA** -- weighted multiplicative attention (Luong et al., 2015's "general" score, as used by
  FlexiBERT, Tuli et al., 2022): as SDP, but the scores are ``(Q W) K^T / sqrt(d/h)`` with one more
  bias-free ``d x d`` matrix ``W`` applied to the queries before they are split into heads.
* **LT / DFT** -- Fourier token mixing (FNet, Lee-Thorp et al., 2022): a linear map ``d -> d``, then
  per head the real part of the 2-D discrete Fourier transform over (positions, the head's ``d/h``
  channels). As in the benchmark code there is no output projection, residual or LayerNorm: the FFN
  block's residual starts from the transform's output.
* **LT / DCT** -- the same with the unnormalised 2-D DCT-II, ``X_k = 2 sum_n x_n cos(pi k (2n+1) / 2N)``
  along each axis (scipy's ``dct(type=2, norm=None)``; FlexiBERT's cosine variant of FNet).
* **DSC / k** -- ConvBERT's mixed attention (Jiang et al., 2020) with kernel width ``k``: ``h/2`` heads
  of width ``d/h`` do SDP attention; ``h/2`` heads do a span-based dynamic convolution: a depthwise-
  separable convolution of the input (depthwise width ``k`` over positions, pointwise ``d -> d/2``, no
  biases but one shared one) gives span-aware keys; their product with the queries is mapped to ``k``
  softmax-normalised kernel weights per head and position, which mix a ``k``-position window of a
  linear map of the input (``d -> d/2``, zero padding). The two halves are concatenated back to ``d``,
  then output projection, residual and LayerNorm as for SA.
* **FFN** -- ``num_feed_forward`` linear+GELU layers (``d -> f``, then ``f -> f``), a linear ``f -> d``,
  the residual from the operation's output, and a LayerNorm.

Init (ELECTRA/BERT's, seeded): every weight matrix, convolution and embedding normal(0, 0.02), biases
zero, LayerNorms unit gain, the padding token's embedding row zero.

The pre-training head is ELECTRA's discriminator (dense ``d -> d``, GELU, dense ``d -> 1``): replaced-token
detection, the benchmark models' pre-training task, gives the gradient proxies their loss
(:meth:`FlexiBertModel.proxy_loss`). It is not counted in the model's parameters.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lts.flexibert.config import FlexiBertConfig, LayerConfig

LN_EPS = 1e-12
INIT_STD = 0.02
REPLACE_FRACTION = 0.15  # ELECTRA's masking rate, used for the replaced-token-detection loss
CORRUPTION_SEED = 0


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, T, heads * w) -> (B, heads, T, w)."""
    B, T, C = x.shape
    return x.view(B, T, heads, C // heads).transpose(1, 2)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, heads, T, w) -> (B, T, heads * w)."""
    B, H, T, W = x.shape
    return x.transpose(1, 2).reshape(B, T, H * W)


class _Recorded(nn.Module):
    """An operation that can hand its attention probabilities to a caller (head confidence)."""

    def __init__(self) -> None:
        super().__init__()
        self.record: list[torch.Tensor] | None = None

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Per-head softmax(q k^T / sqrt(width)) v on (B, H, T, w) tensors; probabilities kept when recording."""
        probs = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.size(-1)), dim=-1)
        if self.record is not None:
            self.record.append(probs)
        return probs @ v


class OutputBlock(nn.Module):
    """Projection back to ``d``, residual, LayerNorm (BERT's self-output)."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.dense = nn.Linear(d, d)
        self.norm = nn.LayerNorm(d, eps=LN_EPS)

    def forward(self, mixed: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.norm(self.dense(mixed) + residual)


class SelfAttention(_Recorded):
    """SA: scaled dot-product (``SDP``) or weighted multiplicative (``WMA``) attention."""

    def __init__(self, d: int, heads: int, weighted: bool) -> None:
        super().__init__()
        self.heads = heads
        self.query, self.key, self.value = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.weight = nn.Linear(d, d, bias=False) if weighted else None
        self.output = OutputBlock(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.query(x)
        if self.weight is not None:
            q = self.weight(q)
        k, v = self.key(x), self.value(x)
        mixed = self._attend(_split_heads(q, self.heads), _split_heads(k, self.heads), _split_heads(v, self.heads))
        return self.output(_merge_heads(mixed), x)


def dct_matrix(n: int, dtype: torch.dtype = torch.float32, device: Any = None) -> torch.Tensor:
    """``C[k, j] = 2 cos(pi k (2j + 1) / (2n))``: ``C @ x`` is the unnormalised DCT-II of ``x``."""
    k = torch.arange(n, dtype=torch.float64).unsqueeze(1)
    j = torch.arange(n, dtype=torch.float64).unsqueeze(0)
    return (2.0 * torch.cos(math.pi * k * (2 * j + 1) / (2 * n))).to(dtype=dtype, device=device)


class LinearTransform(nn.Module):
    """LT: a linear map, then a fixed 2-D transform (DFT real part or DCT-II) per head."""

    def __init__(self, d: int, heads: int, kind: str) -> None:
        super().__init__()
        self.heads, self.kind = heads, kind
        self.input = nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = _split_heads(self.input(x), self.heads)  # (B, H, T, w)
        if self.kind == "DFT":
            z = torch.fft.fft2(z, dim=(-2, -1)).real
        else:
            T, W = z.shape[-2:]
            z = dct_matrix(T, z.dtype, z.device) @ z @ dct_matrix(W, z.dtype, z.device).T
        return _merge_heads(z)


class MixedConvAttention(_Recorded):
    """DSC: half the heads attend, half apply a span-based dynamic convolution of width ``kernel``."""

    def __init__(self, d: int, heads: int, kernel: int) -> None:
        super().__init__()
        self.half = heads // 2
        self.kernel = kernel
        width = self.half * (d // heads)  # d / 2
        self.query, self.key, self.value = nn.Linear(d, width), nn.Linear(d, width), nn.Linear(d, width)
        self.depthwise = nn.Conv1d(d, d, kernel, padding=kernel // 2, groups=d, bias=False)
        self.pointwise = nn.Conv1d(d, width, 1, bias=False)
        self.conv_bias = nn.Parameter(torch.zeros(width))
        self.conv_kernel = nn.Linear(width, self.half * kernel)
        self.conv_values = nn.Linear(d, width)
        self.output = OutputBlock(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        q = self.query(x)
        attended = self._attend(_split_heads(q, self.half), _split_heads(self.key(x), self.half),
                                _split_heads(self.value(x), self.half))  # (B, H/2, T, w)
        span_keys = self.pointwise(self.depthwise(x.transpose(1, 2))).transpose(1, 2) + self.conv_bias
        weights = torch.softmax(self.conv_kernel(span_keys * q).view(B, T, self.half, self.kernel), dim=-1)
        # Windows of `kernel` positions centred on each position, zero-padded at the ends: (B, T, width, k).
        pad = self.kernel // 2
        windows = F.pad(self.conv_values(x), (0, 0, pad, pad)).unfold(1, self.kernel, 1)
        windows = windows.reshape(B, T, self.half, -1, self.kernel)  # (B, T, H/2, w, k)
        convolved = (windows * weights.unsqueeze(3)).sum(-1)  # (B, T, H/2, w)
        mixed = torch.cat([attended.transpose(1, 2), convolved], dim=2)  # attention heads first
        return self.output(mixed.reshape(B, T, -1), x)


class FeedForward(nn.Module):
    """``num_feed_forward`` linear+GELU layers of width ``f``, a projection back to ``d``, residual, LayerNorm."""

    def __init__(self, d: int, f: int, n: int) -> None:
        super().__init__()
        self.hidden = nn.ModuleList([nn.Linear(d, f)] + [nn.Linear(f, f) for _ in range(n - 1)])
        self.dense = nn.Linear(f, d)
        self.norm = nn.LayerNorm(d, eps=LN_EPS)

    def forward(self, x: torch.Tensor, pre_norm: bool = False) -> torch.Tensor:
        z = x
        for layer in self.hidden:
            z = F.gelu(layer(z))
        z = self.dense(z) + x
        return z if pre_norm else self.norm(z)


def build_operation(layer: LayerConfig, d: int) -> nn.Module:
    h = layer.num_operation_heads
    if layer.operation_type == "SA":
        return SelfAttention(d, h, weighted=layer.operation_parameter == "WMA")
    if layer.operation_type == "LT":
        return LinearTransform(d, h, str(layer.operation_parameter))
    return MixedConvAttention(d, h, int(layer.operation_parameter))


class EncoderLayer(nn.Module):
    def __init__(self, layer: LayerConfig, d: int) -> None:
        super().__init__()
        self.operation = build_operation(layer, d)
        self.ffn = FeedForward(d, layer.feed_forward_dimension, layer.num_feed_forward)

    def forward(self, x: torch.Tensor, pre_norm: bool = False) -> torch.Tensor:
        return self.ffn(self.operation(x), pre_norm=pre_norm)


class Embeddings(nn.Module):
    def __init__(self, cfg: FlexiBertConfig) -> None:
        super().__init__()
        e = cfg.embedding_size
        self.word = nn.Embedding(cfg.vocab_size, e, padding_idx=0)
        self.position = nn.Embedding(cfg.max_position_embeddings, e)
        self.token_type = nn.Embedding(cfg.type_vocab_size, e)
        self.norm = nn.LayerNorm(e, eps=LN_EPS)
        self.project = nn.Linear(e, cfg.hidden_size) if e != cfg.hidden_size else None

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.size(1), device=ids.device)
        # One segment: every token type is 0, so the type table contributes its first row.
        x = self.word(ids) + self.position(positions) + self.token_type.weight[0]
        x = self.norm(x)
        return self.project(x) if self.project is not None else x


class Discriminator(nn.Module):
    """ELECTRA's replaced-token-detection head: one logit per position."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.dense = nn.Linear(d, d)
        self.out = nn.Linear(d, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.out(F.gelu(self.dense(h))).squeeze(-1)


class FlexiBertModel(nn.Module):
    """``forward(ids)`` gives the encoder's last hidden states ``(B, T, hidden_size)``."""

    def __init__(self, cfg: FlexiBertConfig) -> None:
        super().__init__()
        self.config = cfg
        self.embeddings = Embeddings(cfg)
        self.layers = nn.ModuleList(EncoderLayer(layer, cfg.hidden_size) for layer in cfg.layers)
        self.discriminator = Discriminator(cfg.hidden_size)

    def check_ids(self, ids: torch.Tensor) -> None:
        if ids.dim() != 2 or ids.size(1) < 1:
            raise ValueError(f"token ids must be a (batch, length) LongTensor, got shape {tuple(ids.shape)}")
        if ids.size(1) > self.config.max_position_embeddings:
            raise ValueError(f"sequence length {ids.size(1)} exceeds max_position_embeddings "
                             f"{self.config.max_position_embeddings}")

    def encode(self, x: torch.Tensor, pre_norm: bool = False) -> torch.Tensor:
        """The encoder layers on embedded inputs; ``pre_norm``: stop before the last LayerNorm."""
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x, pre_norm=pre_norm and i == last)
        return x

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        self.check_ids(ids)
        return self.encode(self.embeddings(ids))

    # -- parameter groups ---------------------------------------------------------------
    def encoder_modules(self) -> list[nn.Module]:
        """The modules whose parameters are ``encoder_params`` (the layers; no embeddings, no head)."""
        return list(self.layers)

    def counted_modules(self) -> list[nn.Module]:
        """The modules of the model as specified (embeddings + layers): ``total_params``."""
        return [self.embeddings, *self.layers]

    # -- ZeroLM: the matrices of each functional sub-module -------------------------------
    def zerolm_matrices(self) -> tuple[list[tuple[torch.Tensor, int]], list[tuple[torch.Tensor, int]]]:
        """``(attention, ffn)``: each a list of ``(weight, blocks)``, the weight split into ``blocks``
        row blocks (one per head) whose capacities are summed. "Attention" is every token-mixing
        operation's matrices (SA, LT and DSC alike); convolution kernels are read as
        ``out_channels x (in_channels/groups * width)`` matrices."""
        attn: list[tuple[torch.Tensor, int]] = []
        ffn: list[tuple[torch.Tensor, int]] = []
        for layer in self.layers:
            op = layer.operation
            if isinstance(op, SelfAttention):
                attn += [(op.query.weight, op.heads), (op.key.weight, op.heads), (op.value.weight, op.heads)]
                if op.weight is not None:
                    attn.append((op.weight.weight, 1))
                attn.append((op.output.dense.weight, 1))
            elif isinstance(op, LinearTransform):
                attn.append((op.input.weight, op.heads))
            else:
                h = op.half
                attn += [(op.query.weight, h), (op.key.weight, h), (op.value.weight, h),
                         (op.depthwise.weight.flatten(1), 1), (op.pointwise.weight.flatten(1), h),
                         (op.conv_kernel.weight, h), (op.conv_values.weight, h), (op.output.dense.weight, 1)]
            ffn += [(lin.weight, 1) for lin in layer.ffn.hidden] + [(layer.ffn.dense.weight, 1)]
        return attn, ffn

    # -- the zero-cost proxies' interface (lts.proxies.zero_cost.ProxyModel) ---------------
    def proxy_parameters(self) -> list[nn.Parameter]:
        return [p for m in self.encoder_modules() for p in m.parameters()]

    def proxy_output(self, tokens: torch.Tensor, embed_leaf: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The encoder output before its last LayerNorm (whose sum is identically zero at init); with
        ``embed_leaf`` also the embedded input as a leaf that requires grad."""
        self.check_ids(tokens)
        x = self.embeddings(tokens)
        leaf = None
        if embed_leaf:
            leaf = x = x.detach().requires_grad_(True)
        return self.encode(x, pre_norm=True), leaf

    def proxy_loss(self, tokens: torch.Tensor) -> torch.Tensor:
        """ELECTRA's replaced-token detection on ``tokens``: a seeded 15% of positions get a token
        drawn from elsewhere in the batch; the head predicts, per position, whether it was replaced
        (mean binary cross-entropy; a draw equal to the original counts as not replaced, as in ELECTRA)."""
        corrupted, replaced = corrupt(tokens)
        logits = self.discriminator(self(corrupted))
        return F.binary_cross_entropy_with_logits(logits, replaced.to(logits.dtype))

    def proxy_hidden_units(self) -> list[nn.Module]:
        """Every FFN hidden linear: its output's sign is the unit's activation pattern (GELU(z) > 0 iff z > 0)."""
        return [lin for layer in self.layers for lin in layer.ffn.hidden]

    def proxy_attention(self, tokens: torch.Tensor) -> list[torch.Tensor]:
        """Attention probabilities ``(B, H, T, T)`` of every attending operation (none for LT layers)."""
        ops = [layer.operation for layer in self.layers if isinstance(layer.operation, _Recorded)]
        probs: list[torch.Tensor] = []
        for op in ops:
            op.record = probs
        try:
            with torch.no_grad():
                self(tokens)
        finally:
            for op in ops:
                op.record = None
        return probs


def corrupt(tokens: torch.Tensor, fraction: float = REPLACE_FRACTION, seed: int = CORRUPTION_SEED
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(corrupted, replaced)``: a seeded ``fraction`` of positions take the token of a random other
    position of the batch; ``replaced`` marks the positions whose token changed."""
    gen = torch.Generator().manual_seed(seed)
    flat = tokens.reshape(-1)
    n = flat.numel()
    chosen = torch.randperm(n, generator=gen)[: max(1, round(fraction * n))]
    source = torch.randint(0, n, (chosen.numel(),), generator=gen)
    corrupted = flat.clone()
    corrupted[chosen] = flat[source]
    return corrupted.view_as(tokens), (corrupted != flat).view_as(tokens)


def _init_(model: nn.Module, seed: int) -> None:
    gen = torch.Generator(device="cpu").manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.fill_(1.0)
                m.bias.zero_()
                continue
            for name, p in m.named_parameters(recurse=False):
                if name == "bias" or name == "conv_bias":
                    p.zero_()
                else:
                    p.normal_(0.0, INIT_STD, generator=gen)
            if isinstance(m, nn.Embedding) and m.padding_idx is not None:
                m.weight[m.padding_idx].zero_()


def build_flexibert(cfg: FlexiBertConfig, device: str | torch.device = "cpu", seed: int = 0) -> FlexiBertModel:
    """Build the encoder for ``cfg``; ``device="meta"`` gives shapes only (instant, no memory).

    Built on the meta device first, then materialised and initialised with a seeded generator, so the
    weights depend on the seed and the architecture only (not on torch's global random state)."""
    if not isinstance(cfg, FlexiBertConfig):
        raise TypeError(f"not a FlexiBERT config: {type(cfg).__name__}")
    with torch.device("meta"):
        model = FlexiBertModel(cfg)
    if str(device) == "meta":
        return model
    model.to_empty(device=device)
    _init_(model, seed)
    return model.eval()


def count_parameters(model: FlexiBertModel) -> dict[str, int]:
    """Parameter counts of a built model, each shared tensor once (the head excluded)."""

    def unique(modules: list[nn.Module]) -> int:
        return sum({id(p): p.numel() for m in modules for p in m.parameters()}.values())

    return {"total_params": unique(model.counted_modules()), "encoder_params": unique(model.encoder_modules())}
