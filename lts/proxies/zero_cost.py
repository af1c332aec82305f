"""The classic zero-cost proxies, adapted to both lts language-model families.

Every proxy takes a built model (at init) and a batch of corpus tokens ``(B, L)``; the model reads
``tokens[:, :T]`` and, where a loss is needed, predicts ``tokens[:, 1:T + 1]`` with
``T = min(L - 1, tgt_len)``. Sums run over the *decoder* parameters only (the modules of
``model.decoder_modules()``: the LTS proxy's parameters), so that the embedding/softmax, whose size
we may reduce for speed (see :mod:`lts.proxies.compute`), does not enter the score directly.

Definitions (``L`` = mean next-token NLL over the batch; ``theta`` = decoder parameter tensors):

* ``grad_norm``  = sum_theta ||dL/dtheta||_2                        (Abdelfattah et al., 2021)
* ``snip``       = sum_theta sum |theta * dL/dtheta|                (Lee et al., 2019)
* ``synflow``    = sum_theta sum theta' * dR/dtheta', with theta' = |theta| for every parameter
                   of the model and R = sum of the decoder output h (Tanaka et al., 2020)
* ``jacob_cov``  = -sum_i [log(l_i + k) + 1 / (l_i + k)], k = 1e-5, l_i the eigenvalues of the
                   correlation matrix of the per-sequence Jacobians dR_b/dx_b (Mellor et al., 2020)
* ``naswot``     = log|det K|, K_ab = N - Hamming(c_a, c_b), c_b the binary code (pre-activation
                   > 0) of every FFN hidden unit at every position of sequence b (Mellor et al., 2021)
* ``head_confidence`` = sum_layers sum_heads mean_{b,q} max_k A[b, h, q, k], A the attention
                   probabilities (Voita et al., 2019's per-head confidence, summed over heads)

"Decoder output" ``h`` is the residual stream *before the final LayerNorm* (GPT-2: the input of
``ln_f``; Transformer-XL, post-norm: the input of the last layer's FFN LayerNorm). The sum of a
LayerNorm's output is identically zero at init (unit gain, zero bias), which would make synflow and
jacob_cov vanish; the pre-norm stream is the last place where a plain sum is informative.
The Transformer-XL proxies run with an empty memory (one segment).

All of them are deterministic for a fixed model seed, token batch and thread count.

Other models. The proxies reach a model only through :class:`ProxyModel` (its proxy parameters, a
loss, the pre-norm output with an optional embedding leaf, the FFN hidden-unit modules, the attention
probabilities). lts's causal LMs get it from an adapter (:class:`CausalLMProxies`, the definitions
above); any other model implements the five methods itself, as the FlexiBERT encoders do
(:class:`lts.flexibert.model.FlexiBertModel`, with its own loss and token convention), and every proxy
here then applies to it unchanged.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from lts.models import GPT2Flex

JACOB_K = 1e-5


class _Stop(Exception):
    """Raised by a hook once the tensor we need exists, to skip the (possibly huge) softmax."""


def _split(model: nn.Module, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if tokens.dim() != 2 or tokens.size(1) < 2:
        raise ValueError(f"tokens must be a (batch, length >= 2) LongTensor, got shape {tuple(tokens.shape)}")
    T = min(tokens.size(1) - 1, model.config.tgt_len)  # type: ignore[attr-defined]
    return tokens[:, :T], tokens[:, 1 : T + 1]


def decoder_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The decoder's parameters, each shared tensor once, in a fixed order."""
    seen: dict[int, nn.Parameter] = {}
    for m in model.decoder_modules():  # type: ignore[operator]
        for p in m.parameters():
            seen.setdefault(id(p), p)
    return list(seen.values())


def _embedding(model: nn.Module) -> nn.Module:
    return model.wte if isinstance(model, GPT2Flex) else model.word_emb  # type: ignore[return-value]


def _last_norm(model: nn.Module) -> nn.Module:
    return model.ln_f if isinstance(model, GPT2Flex) else model.layers[-1].pos_ff.layer_norm  # type: ignore[return-value,index]


def _run(model: nn.Module, inp: torch.Tensor) -> None:
    try:
        model(inp)
    except _Stop:
        pass


def decoder_output(model: nn.Module, inp: torch.Tensor, embed_leaf: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The pre-final-norm decoder output ``(B, T, d)``; with ``embed_leaf``, also the token embeddings
    as a leaf that requires grad (for input Jacobians). The softmax is never computed."""
    captured: dict[str, torch.Tensor] = {}

    def at_norm(_m: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        captured["h"] = args[0]
        raise _Stop

    def at_embedding(_m: nn.Module, _args: Any, out: torch.Tensor) -> torch.Tensor:
        leaf = out.detach().requires_grad_(True)
        captured["x"] = leaf
        return leaf

    handles = [_last_norm(model).register_forward_pre_hook(at_norm)]
    if embed_leaf:
        handles.append(_embedding(model).register_forward_hook(at_embedding))
    try:
        _run(model, inp)
    finally:
        for h in handles:
            h.remove()
    return captured["h"], captured.get("x")


def lm_loss(model: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    inp, tgt = _split(model, tokens)
    out = model(inp, tgt)
    return out[0] if isinstance(out, tuple) else out


def _grads(output: torch.Tensor, params: list[nn.Parameter]) -> list[tuple[nn.Parameter, torch.Tensor]]:
    """d output / d params for the params in the graph; nothing is accumulated in ``.grad``, so
    proxies sharing one model never see each other's gradients (and the embedding's, possibly
    huge, gradient is never computed)."""
    grads = torch.autograd.grad(output, params, allow_unused=True)
    return [(p, g) for p, g in zip(params, grads) if g is not None]


@runtime_checkable
class ProxyModel(Protocol):
    """What the zero-cost proxies read from a model (see the module docstring)."""

    def proxy_parameters(self) -> list[nn.Parameter]:
        """The parameters the sums run over, each shared tensor once, in a fixed order."""

    def proxy_loss(self, tokens: torch.Tensor) -> torch.Tensor:
        """The scalar training loss on ``tokens`` (grad_norm, snip)."""

    def proxy_output(self, tokens: torch.Tensor, embed_leaf: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The pre-final-norm output ``(B, T, d)`` and, with ``embed_leaf``, the embedded input as a grad leaf."""

    def proxy_hidden_units(self) -> list[nn.Module]:
        """Modules whose outputs are FFN pre-activations (their signs are the NASWOT codes)."""

    def proxy_attention(self, tokens: torch.Tensor) -> list[torch.Tensor]:
        """Attention probabilities ``(B, H, Q, K)`` of every attention map the model computes."""


class CausalLMProxies:
    """:class:`ProxyModel` for lts's causal LMs (GPT2Flex, MemTransformerLM): next-token NLL, the decoder."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def proxy_parameters(self) -> list[nn.Parameter]:
        return decoder_parameters(self.model)

    def proxy_loss(self, tokens: torch.Tensor) -> torch.Tensor:
        return lm_loss(self.model, tokens)

    def proxy_output(self, tokens: torch.Tensor, embed_leaf: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        inp, _ = _split(self.model, tokens)
        return decoder_output(self.model, inp, embed_leaf=embed_leaf)

    def proxy_hidden_units(self) -> list[nn.Module]:
        return _ffn_inputs(self.model)

    def proxy_attention(self, tokens: torch.Tensor) -> list[torch.Tensor]:
        inp, _ = _split(self.model, tokens)
        with torch.no_grad(), _AttentionRecorder() as rec:
            decoder_output(self.model, inp)
        n_layer = self.model.config.n_layer  # type: ignore[attr-defined]
        if len(rec.probs) != n_layer:
            raise RuntimeError(f"expected {n_layer} attention maps, recorded {len(rec.probs)}")
        return rec.probs


def proxy_view(model: Any) -> ProxyModel:
    """``model`` itself when it implements :class:`ProxyModel`, else the causal-LM adapter."""
    return model if isinstance(model, ProxyModel) else CausalLMProxies(model)


def grad_norm(model: nn.Module, tokens: torch.Tensor) -> float:
    view = proxy_view(model)
    pairs = _grads(view.proxy_loss(tokens), view.proxy_parameters())
    return sum(float(g.norm()) for _, g in pairs)


def snip(model: nn.Module, tokens: torch.Tensor) -> float:
    view = proxy_view(model)
    pairs = _grads(view.proxy_loss(tokens), view.proxy_parameters())
    return sum(float((p.detach() * g).abs().sum()) for p, g in pairs)


def synflow(model: nn.Module, tokens: torch.Tensor) -> float:
    # A copy: the proxy replaces every weight by its absolute value, and the caller's model must
    # stay as built for the other proxies.
    m = copy.deepcopy(model)
    with torch.no_grad():
        for p in m.parameters():
            p.abs_()
    view = proxy_view(m)
    h, _ = view.proxy_output(tokens)
    pairs = _grads(h.sum(), view.proxy_parameters())
    return sum(float((p.detach() * g).sum()) for p, g in pairs)


def jacob_cov(model: nn.Module, tokens: torch.Tensor) -> float:
    h, x = proxy_view(model).proxy_output(tokens, embed_leaf=True)
    assert x is not None
    # Sequences do not interact, so one backward of the batch sum gives every sequence's Jacobian.
    (jac,) = torch.autograd.grad(h.sum(), x)
    jac = jac.reshape(x.size(0), -1).to(torch.float64)
    corr = torch.nan_to_num(torch.corrcoef(jac), nan=0.0)  # a constant row has no defined correlation
    eig = torch.linalg.eigvalsh(corr)
    return float(-(torch.log(eig + JACOB_K) + 1.0 / (eig + JACOB_K)).sum())


def _ffn_inputs(model: nn.Module) -> list[nn.Module]:
    """The first FFN linear of every layer: its output is the pre-activation of the hidden units."""
    if isinstance(model, GPT2Flex):
        return [layer.mlp.c_fc for layer in model.layers]
    return [layer.pos_ff.CoreNet[0] for layer in model.layers]  # type: ignore[attr-defined]


@torch.no_grad()
def naswot(model: nn.Module, tokens: torch.Tensor) -> float:
    view = proxy_view(model)
    codes: list[torch.Tensor] = []

    def keep(_m: nn.Module, _a: Any, out: torch.Tensor) -> None:
        codes.append((out > 0).reshape(out.size(0), -1).to(torch.float64))

    handles = [m.register_forward_hook(keep) for m in view.proxy_hidden_units()]
    try:
        view.proxy_output(tokens)
    finally:
        for h in handles:
            h.remove()
    c = torch.cat(codes, dim=1)
    # N - Hamming distance = agreements on active units + agreements on inactive units.
    k = c @ c.T + (1 - c) @ (1 - c).T
    sign, logdet = torch.linalg.slogdet(k)
    return float(logdet) if sign != 0 else -math.inf


class _AttentionRecorder(TorchFunctionMode):
    """Records attention probabilities as the model computes them.

    GPT-2 uses the fused ``scaled_dot_product_attention`` (the probabilities never exist), so they
    are recomputed from its query and key arguments; Transformer-XL calls ``torch.softmax`` on its
    scores inside ``dec_attn`` only (its output layer uses ``log_softmax``), so those outputs are
    kept. This way the proxy reads what the model really does without duplicating its attention code.
    """

    def __init__(self) -> None:
        super().__init__()
        self.probs: list[torch.Tensor] = []

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func is F.scaled_dot_product_attention:
            q, k = args[0], args[1]
            scale = kwargs.get("scale") or 1.0 / math.sqrt(q.size(-1))
            scores = (q @ k.transpose(-2, -1)) * scale
            if kwargs.get("is_causal", False):
                Q, K = scores.shape[-2:]
                mask = torch.ones(Q, K, dtype=torch.bool).triu(1 + K - Q)
                scores = scores.masked_fill(mask, float("-inf"))
            self.probs.append(torch.softmax(scores, dim=-1))
        elif func is torch.softmax or func is F.softmax:
            self.probs.append(out)
        return out


@torch.no_grad()
def head_confidence(model: nn.Module, tokens: torch.Tensor) -> float:
    probs = proxy_view(model).proxy_attention(tokens)
    # (B, H, Q, K): the largest probability of each query, averaged over batch and queries, per head.
    # A model without attention (e.g. only Fourier mixing) has no heads: the sum is 0.
    return float(sum(p.amax(dim=-1).mean(dim=(0, 2)).sum() for p in probs))
