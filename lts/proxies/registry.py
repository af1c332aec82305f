"""Every training-free proxy lts knows, behind one interface.

A :class:`ProxySpec` says what a proxy needs (a built model? a batch of tokens? gradients?) and
which way it points; its ``fn(config, model, tokens)`` returns one float. Analytic proxies ignore
``model`` and ``tokens``; the others get a model built by :func:`lts.models.build_model` with a
fixed seed, and a fixed batch (:mod:`lts.proxies.tokens`). :mod:`lts.proxies.compute` does the
building and timing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import nn

from lts.errors import LtsError
from lts.proxies import zero_cost, zerolm
from lts.proxies.params import decoder_params, flops_per_token, total_params
from lts.space.config import Config

ProxyFn = Callable[[Config, Optional[nn.Module], Optional[torch.Tensor]], float]


@dataclass(frozen=True)
class ProxySpec:
    name: str
    fn: ProxyFn
    needs_model: bool  # an initialised model (False: computed from the config alone)
    needs_data: bool  # a batch of corpus tokens
    needs_grad: bool  # a backward pass
    higher_is_better: bool  # True: a larger value should mean a lower perplexity
    summary: str

    def metadata(self) -> dict[str, object]:
        return {"name": self.name, "needs_model": self.needs_model, "needs_data": self.needs_data,
                "needs_grad": self.needs_grad, "higher_is_better": self.higher_is_better, "summary": self.summary}


def analytic(f: Callable[[Config], float]) -> ProxyFn:
    return lambda cfg, model, tokens: float(f(cfg))


def on_model(f: Callable[[nn.Module], float]) -> ProxyFn:
    return lambda cfg, model, tokens: float(f(model))  # type: ignore[arg-type]


def on_batch(f: Callable[[nn.Module, torch.Tensor], float]) -> ProxyFn:
    return lambda cfg, model, tokens: float(f(model, tokens))  # type: ignore[arg-type]


_SPECS: tuple[ProxySpec, ...] = (
    ProxySpec("decoder_params", analytic(decoder_params), False, False, False, True,
              "non-embedding parameters (the LTS proxy), analytic"),
    ProxySpec("total_params", analytic(total_params), False, False, False, True,
              "all parameters, tied tensors once, analytic"),
    ProxySpec("flops", analytic(flops_per_token), False, False, False, True,
              "forward FLOPs per token of one segment, analytic"),
    ProxySpec("zerolm", on_model(zerolm.zerolm), True, False, False, True,
              "ZeroLM: S_ffn + alpha*S_attn of ||W||_F^2/min(m,n) over per-head Q/K/V, O and FFN weights"),
    ProxySpec("zerolm_ffn", on_model(lambda m: zerolm.weight_parts(m).ffn), True, False, False, True,
              "ZeroLM's FFN term S_ffn alone (alpha = 0)"),
    ProxySpec("zerolm_attn", on_model(lambda m: zerolm.weight_parts(m).attn), True, False, False, True,
              "ZeroLM's attention term S_attn alone"),
    ProxySpec("zerolm_analytic", analytic(zerolm.zerolm_expected), False, False, False, True,
              "ZeroLM's expectation at lts's normal(0, 0.02) init, from the config"),
    ProxySpec("synflow", on_batch(zero_cost.synflow), True, True, True, True,
              "sum theta*dR/dtheta with |weights|, R = sum of the pre-final-norm decoder output"),
    ProxySpec("snip", on_batch(zero_cost.snip), True, True, True, True,
              "sum |theta * dL/dtheta| over decoder parameters"),
    ProxySpec("grad_norm", on_batch(zero_cost.grad_norm), True, True, True, True,
              "sum of the L2 norms of dL/dtheta over decoder parameter tensors"),
    ProxySpec("jacob_cov", on_batch(zero_cost.jacob_cov), True, True, True, True,
              "-sum log(l+k)+1/(l+k) over eigenvalues of the per-sequence input-Jacobian correlation"),
    ProxySpec("naswot", on_batch(zero_cost.naswot), True, True, False, True,
              "log|det K| of FFN activation-pattern agreements (N - Hamming) between sequences"),
    ProxySpec("head_confidence", on_batch(zero_cost.head_confidence), True, True, False, True,
              "sum over heads of the mean largest attention probability"),
)

PROXIES: dict[str, ProxySpec] = {s.name: s for s in _SPECS}


def names() -> list[str]:
    return list(PROXIES)


def get(name: str) -> ProxySpec:
    try:
        return PROXIES[name]
    except KeyError:
        raise LtsError(f"unknown proxy {name!r}; choose from {', '.join(PROXIES)}") from None


def select(spec: str | None) -> list[ProxySpec]:
    """Proxies named in a comma list (``None`` or empty: all of them, in registry order)."""
    if not spec:
        return list(_SPECS)
    return [get(n.strip()) for n in spec.split(",") if n.strip()]
