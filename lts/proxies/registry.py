"""Every training-free proxy lts knows, behind one interface.

A :class:`ProxySpec` says what a proxy needs (a built model? a batch of tokens? gradients?), which
way it points and which config families it applies to; its ``fn(config, model, tokens)`` returns
one float. Analytic proxies ignore ``model`` and ``tokens``; the others get a model built with a
fixed seed (:func:`lts.models.build_model`, or :func:`lts.flexibert.model.build_flexibert` for
FlexiBERT encoders) and a fixed batch (:mod:`lts.proxies.tokens`). :mod:`lts.proxies.compute` does
the building and timing.

A name may have one spec per family where the computation differs (``total_params`` of an encoder,
ZeroLM's alpha, see :mod:`lts.proxies.encoders`); the zero-cost proxies are one spec for every
family. :func:`for_family` gives a family's proxies, in registry order; :data:`PROXIES` are the
language models' (``gpt2``, ``transxl``, ``darts``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

from lts.errors import LtsError
from lts.flexibert import params as encoder_counts
from lts.flexibert.config import FAMILY as FLEXIBERT
from lts.space.config import CONFIG_TYPES, Config
from lts.space.counts import decoder_params, flops_per_token, total_params

if TYPE_CHECKING:
    import torch
    from torch import nn

# fn(config, model or None, tokens or None) -> float
ProxyFn = Callable[[Config, Any, Any], float]

LM_FAMILIES: tuple[str, ...] = tuple(CONFIG_TYPES)  # gpt2, transxl, darts
ENCODER_FAMILIES: tuple[str, ...] = (FLEXIBERT,)
ALL_FAMILIES = LM_FAMILIES + ENCODER_FAMILIES
_LABELS = {FLEXIBERT: "FlexiBERT "}  # in "unknown FlexiBERT proxy ..."


@dataclass(frozen=True)
class ProxySpec:
    name: str
    fn: ProxyFn
    needs_model: bool  # an initialised model (False: computed from the config alone)
    needs_data: bool  # a batch of corpus tokens
    needs_grad: bool  # a backward pass
    higher_is_better: bool  # True: a larger value should mean a lower perplexity (a higher GLUE score)
    summary: str
    families: tuple[str, ...] = LM_FAMILIES  # the config families it applies to

    def metadata(self) -> dict[str, object]:
        return {"name": self.name, "needs_model": self.needs_model, "needs_data": self.needs_data,
                "needs_grad": self.needs_grad, "higher_is_better": self.higher_is_better, "summary": self.summary}


def _late(module: str, name: str) -> Callable[..., float]:
    """``module.name``, imported at its first call: listing the proxies (``lts proxies list``, the
    search's objective names, the dashboard's menus) needs neither torch nor scipy (1-2 s cold)."""

    def call(*args: Any) -> float:
        return getattr(importlib.import_module(module), name)(*args)

    return call


_ZEROLM, _ZERO_COST = "lts.proxies.zerolm", "lts.proxies.zero_cost"


def analytic(f: Callable[[Config], float]) -> ProxyFn:
    return lambda cfg, model, tokens: float(f(cfg))


def on_model(f: Callable[["nn.Module"], float]) -> ProxyFn:
    return lambda cfg, model, tokens: float(f(model))  # type: ignore[arg-type]


def on_batch(f: Callable[["nn.Module", "torch.Tensor"], float]) -> ProxyFn:
    return lambda cfg, model, tokens: float(f(model, tokens))  # type: ignore[arg-type]


def _encoder_zerolm(model: "nn.Module") -> float:
    from lts.proxies import encoders, zerolm

    return zerolm.weight_parts(model).score(encoders.heuristic_alpha())


def _encoder_zerolm_analytic(cfg: Config) -> float:
    from lts.proxies import encoders

    return encoders.expected_parts(cfg).score(encoders.heuristic_alpha())  # type: ignore[arg-type]


def _zerolm_part(part: str) -> Callable[["nn.Module"], float]:
    def f(model: "nn.Module") -> float:
        from lts.proxies import zerolm

        return getattr(zerolm.weight_parts(model), part)

    return f


_LM, _ENC, _ALL = LM_FAMILIES, ENCODER_FAMILIES, ALL_FAMILIES
# One table, in the order each family lists its proxies.
_SPECS: tuple[ProxySpec, ...] = (
    ProxySpec("decoder_params", analytic(decoder_params), False, False, False, True,
              "non-embedding parameters (the LTS proxy), analytic", _LM),
    ProxySpec("total_params", analytic(total_params), False, False, False, True,
              "all parameters, tied tensors once, analytic", _LM),
    ProxySpec("flops", analytic(flops_per_token), False, False, False, True,
              "forward FLOPs per token of one segment, analytic", _LM),
    ProxySpec("total_params", analytic(encoder_counts.total_params), False, False, False, True,
              "all parameters as specified (embeddings + encoder; per-record hidden size and FFN widths)", _ENC),
    ProxySpec("encoder_params", analytic(encoder_counts.encoder_params), False, False, False, True,
              "encoder-layer parameters (no embeddings), analytic", _ENC),
    ProxySpec("zerolm", on_model(_late(_ZEROLM, "zerolm")), True, False, False, True,
              "ZeroLM: S_ffn + alpha*S_attn of ||W||_F^2/min(m,n) over per-head Q/K/V, O and FFN weights", _LM),
    ProxySpec("zerolm", on_model(_encoder_zerolm), True, False, False, True,
              "ZeroLM S_ffn + alpha*S_attn, data-free alpha (self-parameter heuristic on the space)", _ENC),
    ProxySpec("zerolm_ffn", on_model(_zerolm_part("ffn")), True, False, False, True,
              "ZeroLM's FFN term S_ffn alone (alpha = 0)", _ALL),
    ProxySpec("zerolm_attn", on_model(_zerolm_part("attn")), True, False, False, True,
              "ZeroLM's attention term S_attn alone", _ALL),
    ProxySpec("zerolm_analytic", analytic(_late(_ZEROLM, "zerolm_expected")), False, False, False, True,
              "ZeroLM's expectation at lts's normal(0, 0.02) init, from the config", _LM),
    ProxySpec("zerolm_analytic", analytic(_encoder_zerolm_analytic), False, False, False, True,
              "ZeroLM's expectation at the normal(0, 0.02) init, from the config", _ENC),
    ProxySpec("synflow", on_batch(_late(_ZERO_COST, "synflow")), True, True, True, True,
              "sum theta*dR/dtheta with |weights|, R = sum of the pre-final-norm decoder output", _ALL),
    ProxySpec("snip", on_batch(_late(_ZERO_COST, "snip")), True, True, True, True,
              "sum |theta * dL/dtheta| over decoder parameters", _ALL),
    ProxySpec("grad_norm", on_batch(_late(_ZERO_COST, "grad_norm")), True, True, True, True,
              "sum of the L2 norms of dL/dtheta over decoder parameter tensors", _ALL),
    ProxySpec("jacob_cov", on_batch(_late(_ZERO_COST, "jacob_cov")), True, True, True, True,
              "-sum log(l+k)+1/(l+k) over eigenvalues of the per-sequence input-Jacobian correlation", _ALL),
    ProxySpec("naswot", on_batch(_late(_ZERO_COST, "naswot")), True, True, False, True,
              "log|det K| of FFN activation-pattern agreements (N - Hamming) between sequences", _ALL),
    ProxySpec("head_confidence", on_batch(_late(_ZERO_COST, "head_confidence")), True, True, False, True,
              "sum over heads of the mean largest attention probability", _ALL),
)


def for_family(family: str) -> dict[str, ProxySpec]:
    """The proxies that apply to configs of ``family``, by name, in registry order."""
    if family not in ALL_FAMILIES:
        raise LtsError(f"unknown family {family!r}; choose from {', '.join(ALL_FAMILIES)}")
    return {s.name: s for s in _SPECS if family in s.families}


PROXIES: dict[str, ProxySpec] = for_family("gpt2")  # the language models' (every LM family has the same)


def names(family: str = "gpt2") -> list[str]:
    return list(for_family(family))


def get(name: str, family: str = "gpt2") -> ProxySpec:
    specs = for_family(family)
    try:
        return specs[name]
    except KeyError:
        raise LtsError(f"unknown {_LABELS.get(family, '')}proxy {name!r}; choose from {', '.join(specs)}") from None


def select(spec: str | Sequence[str] | None, family: str = "gpt2") -> list[ProxySpec]:
    """Proxies named in a comma list or sequence (``None`` or empty: all of ``family``'s, in registry order)."""
    if not spec:
        return list(for_family(family).values())
    parts = spec.split(",") if isinstance(spec, str) else spec
    return [get(n.strip(), family) for n in parts if n.strip()]
