"""Objectives and constraints of a search, and their minimisation-form matrix.

An :class:`Objective` says what a search optimises: its name, its direction, whether it is cheap
(computed from the config on any machine) or measured on the run's device, and where its value
lives in a member row. Built in: ``proxy`` (decoder parameters, LTS's perplexity surrogate,
maximised), ``latency`` and ``memory`` (measured, minimised), and with the generate workload
``prefill``, ``decode`` (minimised) and ``tokens_per_s`` (maximised). Every proxy of
:mod:`lts.proxies.registry` is an objective too, under its own name (``zerolm``, ``synflow``, ...):
the runner computes it for each candidate (:mod:`lts.search.scoring`) and caches the value per
architecture, like a measurement.

For the hypervolume each objective is divided by a reference scale so the indicator is a unitless
share of the box bounded by 0 for maximised and 1 for minimised objectives, comparable across runs
that share a reference.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from lts.errors import LtsError
from lts.space.config import short_repr


@dataclass(frozen=True)
class Objective:
    name: str
    column: str  # the key of a member row holding the value
    sign: int  # +1 minimised, -1 maximised (sign * value is minimised)
    measured: bool  # needs the run's device (else computed from the config)
    proxy: str | None = None  # the registered proxy computing it, for objectives beyond the built-in three
    summary: str = ""

    @property
    def direction(self) -> str:
        return "min" if self.sign > 0 else "max"

    @property
    def cheap(self) -> bool:
        return not self.measured


BUILTIN: dict[str, Objective] = {
    "proxy": Objective("proxy", "decoder_params", -1, False, None, "decoder (non-embedding) parameters, analytic"),
    "latency": Objective("latency", "latency_ms", 1, True, None, "latency on the run's device"),
    "memory": Objective("memory", "peak_memory_mb", 1, True, None, "peak memory on the run's device"),
    # the generate workload's figures (lts.cost.protocol); latency is then one whole generation
    "prefill": Objective("prefill", "prefill_ms", 1, True, None, "prefill latency of the prompt (--workload generate)"),
    "decode": Objective("decode", "decode_ms_per_token", 1, True, None,
                        "median decode latency per new token, with the KV cache / memory (--workload generate)"),
    "tokens_per_s": Objective("tokens_per_s", "tokens_per_s", -1, True, None,
                              "decode throughput, new tokens per second (--workload generate)"),
}
GENERATION_OBJECTIVES = ("prefill", "decode", "tokens_per_s")
# name -> (column, sign) of the built-in objectives (callers that only know these three)
OBJECTIVES: dict[str, tuple[str, int]] = {k: (o.column, o.sign) for k, o in BUILTIN.items()}
MEASURED = ("latency", "memory", *GENERATION_OBJECTIVES)


def proxy_column(name: str) -> str:
    """The member-row key of a proxy objective's value."""
    return f"proxy:{name}"


def objective(name: str) -> Objective:
    """The objective called ``name``: a built-in one, or a registered proxy (one-line error otherwise)."""
    if name in BUILTIN:
        return BUILTIN[name]
    from lts.proxies.registry import PROXIES  # the registry imports torch only when a proxy is computed

    spec = PROXIES.get(name)
    if spec is None:
        raise LtsError(f"unknown objective {name!r}; choose from {', '.join(objective_names())}")
    return Objective(name, proxy_column(name), -1 if spec.higher_is_better else 1, False, name, spec.summary)


def objective_names() -> list[str]:
    from lts.proxies.registry import PROXIES

    return list(BUILTIN) + [n for n in PROXIES if n not in BUILTIN]


def proxy_objectives(names: Sequence[str]) -> tuple[str, ...]:
    """The registered proxies among ``names`` (what the runner computes per candidate)."""
    return tuple(n for n in names if n not in BUILTIN)


def parse_objectives(text: str | Sequence[str]) -> tuple[str, ...]:
    names = [t.strip() for t in (text.split(",") if isinstance(text, str) else text) if t.strip()]
    if not names:
        raise LtsError("give at least one objective")
    for n in names:
        objective(n)  # refuses an unknown name
    if len(set(names)) != len(names):
        raise LtsError("an objective is listed twice")
    if all(objective(n).measured for n in names):
        raise LtsError("the objectives must include 'proxy' or another quality proxy (e.g. 'zerolm'), "
                       "not only device costs")
    return tuple(names)


@dataclass(frozen=True)
class Constraints:
    max_latency_ms: float | None = None
    max_memory_mb: float | None = None
    min_params: int | None = None
    max_params: int | None = None

    def __post_init__(self) -> None:
        # Refused here, not only by the CLI: a NaN bound compares False with everything, so it
        # would silently accept every candidate (the dashboard and library callers build these too).
        for k in ("max_latency_ms", "max_memory_mb"):
            v = getattr(self, k)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))
                                  or not math.isfinite(v) or v <= 0):
                raise LtsError(f"constraint {k} must be a positive finite number, got {short_repr(v)}")
        for k in ("min_params", "max_params"):
            v = getattr(self, k)
            if isinstance(v, float) and v.is_integer():  # 2e6 from JSON or a form
                v = int(v)
                object.__setattr__(self, k, v)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v <= 0):
                raise LtsError(f"constraint {k} must be a positive integer, got {short_repr(v)}")
        if self.min_params is not None and self.max_params is not None and self.min_params > self.max_params:
            raise LtsError(f"constraint min_params={self.min_params:,} is larger than max_params={self.max_params:,}")

    @property
    def params_window(self) -> tuple[int | None, int | None]:
        """(min_params, max_params): the decoder-parameter bounds proposals are built inside."""
        return self.min_params, self.max_params

    def params_text(self) -> str:
        """The decoder-parameter bounds in words, e.g. ``>= 9,000,000`` or ``100,000 - 200,000``."""
        lo, hi = self.params_window
        if lo is not None and hi is not None:
            return f"{lo:,} - {hi:,}"
        return f">= {lo:,}" if lo is not None else f"<= {hi:,}" if hi is not None else "any number of"

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Constraints":
        return cls(**d)

    def params_ok(self, decoder_params: int) -> bool:
        """Checked before measuring: a candidate outside the parameter range is never measured."""
        return not ((self.min_params and decoder_params < self.min_params)
                    or (self.max_params and decoder_params > self.max_params))

    def violation(self, row: Mapping[str, Any]) -> str | None:
        """Why a measured row breaks a cost constraint, or None."""
        lat, mem = row.get("latency_ms"), row.get("peak_memory_mb")
        if self.max_latency_ms is not None and lat is not None and lat > self.max_latency_ms:
            return f"latency {lat:.1f} ms > {self.max_latency_ms:g} ms"
        if self.max_memory_mb is not None and mem is not None and mem > self.max_memory_mb:
            return f"memory {mem:.1f} MB > {self.max_memory_mb:g} MB"
        return None


def objective_matrix(rows: Sequence[Mapping[str, Any]], objectives: Sequence[str]) -> np.ndarray:
    """Rows x objectives, minimisation form (maximised objectives negated)."""
    F = np.empty((len(rows), len(objectives)))
    for j, name in enumerate(objectives):
        o = objective(name)
        F[:, j] = [o.sign * float(r[o.column]) for r in rows]
    return F


def hv_reference(objectives: Sequence[str], scales: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """(divisor per objective, reference point) for a normalised hypervolume."""
    div = np.array([scales[name] for name in objectives], dtype=float)
    ref = np.array([0.0 if objective(name).sign < 0 else 1.0 for name in objectives])
    return div, ref
