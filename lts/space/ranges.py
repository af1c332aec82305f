"""Search spaces: the ranges of each hyperparameter, with seeded sampling, mutation and crossover.

A space file (JSON or YAML) names a family and, for each searchable hyperparameter, either a list
of choices or a ``{"min", "max", "step"}`` range; fixed settings (vocabulary, cutoffs, sequence and
memory lengths) are plain values. Omitted keys take LTS's defaults::

    {"family": "gpt2", "n_layer": {"min": 2, "max": 8}, "d_model": [128, 256],
     "n_head": [2, 4, 8], "d_inner": {"min": 512, "max": 2048, "step": 64}, "vocab_size": 4096}

Every random choice takes an explicit ``random.Random`` so searches are reproducible from a seed.
"""

from __future__ import annotations

import bisect
import json
import math
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from lts.errors import ConfigError, LtsError
from lts.space.config import (
    CONFIG_TYPES,
    LIMITS,
    Config,
    checked_int,
    clip_cutoffs,
    limited_int,
    short_repr,
)
from lts.space.counts import decoder_params

SEARCHED = ("n_layer", "d_model", "d_embed", "div_val", "n_head", "d_inner")
PER_LAYER = ("n_head", "d_inner")
FIXED = ("vocab_size", "cutoffs", "tgt_len", "mem_len", "tie_weight", "tie_projs", "d_head")
# Searched fields whose every value some query visits (heads per d_model, clusters per d_embed):
# they may list at most LIMITS["space_choices"] values. n_layer (<= 256 values) and d_inner (only
# its ends and step are used) are bounded by their value limits alone.
_ENUMERATED = ("d_model", "d_embed", "div_val", "n_head")


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class Dim:
    """One searchable hyperparameter: an explicit list of choices, or an integer range.

    Every query is O(1) or O(log n) in the number of choices (ranges are never listed), so a
    space's size and bounds cost nothing however wide its ranges.
    """

    values: tuple[int, ...] = ()
    lo: int = 0
    hi: int = 0
    step: int = 1

    @classmethod
    def parse(cls, name: str, spec: Any) -> "Dim":
        limit = LIMITS.get(name)
        max_choices = LIMITS["space_choices"] if name in _ENUMERATED or not isinstance(spec, Mapping) else None
        if isinstance(spec, Mapping):
            extra = set(spec) - {"min", "max", "step"}
            if extra or not {"min", "max"} <= set(spec):
                raise ConfigError(f"space field {name}: a range needs min and max (and optional step)")
            lo, hi, step = spec["min"], spec["max"], spec.get("step", 1)
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in (lo, hi, step)):
                raise ConfigError(f"space field {name}: min, max and step must be integers")
            if step < 1 or lo < 1 or hi < lo:
                raise ConfigError(f"space field {name}: need 1 <= min <= max and step >= 1")
            if limit is not None and hi > limit:
                raise ConfigError(f"space field {name}: max {short_repr(hi)} is over the limit {limit:,}")
            dim = cls(lo=lo, hi=hi, step=step)
        else:
            if isinstance(spec, int) and not isinstance(spec, bool):
                spec = [spec]
            if not isinstance(spec, (list, tuple)) or not spec:
                raise ConfigError(f"space field {name}: give a non-empty list of choices or a min/max range")
            if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in spec):
                raise ConfigError(f"space field {name}: choices must be positive integers")
            if limit is not None and max(spec) > limit:
                raise ConfigError(f"space field {name}: choice {short_repr(max(spec))} is over the limit {limit:,}")
            dim = cls(values=tuple(sorted(set(spec))))
        if max_choices is not None and len(dim) > max_choices:
            raise ConfigError(f"space field {name}: {len(dim):,} choices is over the limit of {max_choices:,} "
                              "(give a larger step or fewer values)")
        return dim

    @property
    def is_range(self) -> bool:
        return not self.values

    def __len__(self) -> int:
        return len(self.values) if self.values else (self.hi - self.lo) // self.step + 1

    def __contains__(self, v: object) -> bool:
        if not isinstance(v, int) or isinstance(v, bool):
            return False
        if self.values:
            i = bisect.bisect_left(self.values, v)
            return i < len(self.values) and self.values[i] == v
        return self.lo <= v <= self.hi and (v - self.lo) % self.step == 0

    @property
    def min(self) -> int:
        return self.values[0] if self.values else self.lo

    @property
    def max(self) -> int:
        """The largest choice (of a range: the last value on its grid, which may be below ``hi``)."""
        return self.values[-1] if self.values else self.lo + self.step * (len(self) - 1)

    @property
    def max_gap(self) -> int:
        """The widest step between neighbouring choices (0 for a single choice)."""
        if self.values:
            return max((b - a for a, b in zip(self.values, self.values[1:])), default=0)
        return self.step if len(self) > 1 else 0

    def choices(self) -> Sequence[int]:
        """Every choice, ascending (a ``range`` for a range: nothing is listed)."""
        return self.values or range(self.lo, self.max + 1, self.step)

    def sample(self, rng: random.Random) -> int:
        if self.values:
            return rng.choice(self.values)
        return self.lo + self.step * rng.randrange(len(self))

    def _index_span(self, a: int, b: int) -> tuple[int, int]:
        """Indices [i, j) of the choices in [a, b]."""
        if self.values:
            return bisect.bisect_left(self.values, a), bisect.bisect_right(self.values, b)
        i = max(0, _ceil_div(a - self.lo, self.step))
        j = min(len(self), (b - self.lo) // self.step + 1) if b >= self.lo else 0
        return i, max(i, j)

    def count_between(self, a: int, b: int) -> int:
        """Number of choices in [a, b]."""
        i, j = self._index_span(a, b)
        return j - i

    def sample_between(self, rng: random.Random, a: int, b: int) -> int:
        """A uniform choice in [a, b] (there must be one)."""
        i, j = self._index_span(a, b)
        k = i + rng.randrange(j - i)
        return self.values[k] if self.values else self.lo + self.step * k

    def to_spec(self) -> Any:
        if self.values:
            return list(self.values)
        spec = {"min": self.lo, "max": self.hi}
        if self.step != 1:
            spec["step"] = self.step
        return spec


@dataclass(frozen=True)
class _LayerTerms:
    """Decoder parameters of one d_model: ``const + sum over layers of a[h] + slope * d_inner``."""

    const: int
    slope: int
    a: dict[int, int]  # per head count (GPT-2 and Transformer-XL with d_head=-1: one value for all)
    heads: list[int]
    t_min: int  # the smallest and largest term one layer can contribute
    t_max: int

    def a_of(self, h: int) -> int:
        return self.a[h] if h in self.a else self.a[-1]


_DEFAULTS: dict[str, dict[str, Any]] = {
    # Ranges of LTS's published random sets (../shared/reference/lts_published/README.txt).
    "gpt2": {
        "n_layer": {"min": 2, "max": 16},
        "d_model": [64, 128, 256, 512],
        "d_embed": [128, 256, 512],
        "div_val": [1, 2, 4],
        "n_head": [2, 4, 8],
        "d_inner": {"min": 512, "max": 2048},
        "vocab_size": 50264,
        "cutoffs": [19997, 39997, 199997],
        "tgt_len": 192,
    },
    "transxl": {
        "n_layer": {"min": 2, "max": 16},
        "d_model": [64, 128, 256, 512],
        "d_embed": [128, 256, 512],
        "div_val": [1, 2, 4],
        "n_head": [2, 4, 8],
        "d_inner": {"min": 512, "max": 2048},
        "vocab_size": 267736,
        "cutoffs": [19997, 39997, 199997],
        "tgt_len": 192,
        "mem_len": 192,
    },
}


@dataclass(frozen=True)
class SearchSpace:
    family: str
    dims: dict[str, Dim]
    fixed: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    # memo of per-d_model queries (heads, layer terms); not part of the space's identity
    _memo: dict[Any, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_dict(cls, spec: Mapping[str, Any], name: str = "") -> "SearchSpace":
        if not isinstance(spec, Mapping):
            raise ConfigError("a space file must hold a JSON/YAML object")
        spec = dict(spec)
        family = spec.pop("family", None)
        if not isinstance(family, str) or family not in _DEFAULTS:  # YAML may give a list or a date
            raise ConfigError(f"space family must be one of {sorted(_DEFAULTS)}, got {short_repr(family)}")
        name = spec.pop("name", name) or family
        if not isinstance(name, str) or len(name) > 200:
            raise ConfigError(f"space name must be a string of at most 200 characters, got {short_repr(name)}")
        cfg_cls = CONFIG_TYPES[family]
        allowed = set(SEARCHED) | {f for f in FIXED if f in cfg_cls.__dataclass_fields__}
        unknown = sorted((k for k in spec if k not in allowed), key=str)  # YAML keys need not be strings
        if unknown:
            raise ConfigError(f"unknown space field {short_repr(unknown[0])} for family {family!r}")
        merged = {**_DEFAULTS[family], **spec}
        dims = {k: Dim.parse(k, merged[k]) for k in SEARCHED}
        fixed = {k: merged[k] for k in FIXED if k in merged}
        vocab = limited_int("vocab_size", fixed["vocab_size"], minimum=2)
        cutoffs = fixed.get("cutoffs", [])
        if not isinstance(cutoffs, (list, tuple)):
            raise ConfigError(f"space field cutoffs: give a list of integers, got {short_repr(cutoffs)}")
        if len(cutoffs) > LIMITS["cutoffs"]:
            raise ConfigError(f"space field cutoffs: {len(cutoffs)} entries, at most {LIMITS['cutoffs']}")
        cutoffs = [checked_int(f"cutoffs[{i}]", c) for i, c in enumerate(cutoffs)]
        if "cutoffs" in fixed:
            # LTS reuses one cutoff list for every vocabulary; cutoffs past it are dropped.
            fixed["cutoffs"] = clip_cutoffs(cutoffs, vocab)
        space = cls(family=family, dims=dims, fixed=fixed, name=name)
        if family == "transxl" and fixed.get("d_head", -1) == -1:
            odd = next((m for m in dims["d_model"].choices() if m % 2), None)
            if odd is not None:
                raise ConfigError(f"space field d_model: transxl needs even widths (sinusoidal positions), got {odd}")
        for d_model in space._d_model_choices():  # at most LIMITS["space_choices"] of them
            if not space._heads_for(d_model):
                raise ConfigError(f"space field n_head: no choice divides d_model={d_model}")
        d_embed = dims["d_embed"].min  # the narrowest d_embed is the one a div_val can empty
        if not space._div_vals_for(d_embed):
            raise ConfigError(
                f"space field div_val: every choice leaves an adaptive cluster of d_embed={d_embed} "
                "with no width"
            )
        space.sample(random.Random(0))  # fail now, with the field named, if fixed values are impossible
        return space

    @classmethod
    def default(cls, family: str) -> "SearchSpace":
        return cls.from_dict({"family": family})

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"family": self.family, "name": self.name}
        out.update({k: d.to_spec() for k, d in self.dims.items()})
        out.update(self.fixed)
        return out

    # -- queries ------------------------------------------------------------------------
    def _choices(self, key: str) -> Sequence[int]:
        return self.dims[key].choices()

    def _d_model_choices(self) -> Sequence[int]:
        return self._choices("d_model")

    def _heads_for(self, d_model: int) -> list[int]:
        """n_head choices dividing ``d_model``, ascending; O(min(choices, sqrt(d_model))), memoised."""
        key = ("heads", d_model)
        if key not in self._memo:
            dim = self.dims["n_head"]
            root = math.isqrt(d_model)
            if len(dim) <= 2 * root:
                heads = [h for h in dim.choices() if d_model % h == 0]
            else:  # fewer divisors than choices: test the divisors instead
                divisors = {q for i in range(1, root + 1) if d_model % i == 0 for q in (i, d_model // i)}
                heads = sorted(h for h in divisors if h in dim)
            self._memo[key] = heads
        return self._memo[key]

    def _div_vals_for(self, d_embed: int) -> list[int]:
        """div_val choices that leave every adaptive cluster at least one embedding column."""
        n_clusters = len(self.fixed.get("cutoffs", ()))
        dim = self.dims["div_val"]
        if n_clusters == 0:
            return list(dim.choices())
        # d_embed // v**n_clusters >= 1  <=>  v <= the integer n_clusters-th root of d_embed
        top = max(1, int(round(d_embed ** (1 / n_clusters))))
        while (top + 1) ** n_clusters <= d_embed:
            top += 1
        while top > 1 and top**n_clusters > d_embed:
            top -= 1
        i, j = dim._index_span(1, top)
        return list(dim.values[i:j]) if dim.values else list(range(dim.lo + dim.step * i, dim.lo + dim.step * j, dim.step))

    def size(self) -> int:
        """The number of distinct architectures, exactly, without listing any of them.

        Architectures of one d_model with ``p`` (head, d_inner) choices per layer number
        ``sum over n_layer of p**n``; d_models are grouped by ``p``, so the cost is the number of
        d_model choices plus one power sum per distinct ``p``.
        """
        d = self.dims
        per_model = Counter(len(self._heads_for(m)) * len(d["d_inner"]) for m in self._d_model_choices())
        layers = sum(count * sum(p**n for n in self._choices("n_layer")) for p, count in per_model.items())
        n_clusters = len(self.fixed.get("cutoffs", ()))
        if n_clusters == 0:
            embeds = len(d["d_embed"]) * len(d["div_val"])
        else:  # d_embed choices are at most LIMITS["space_choices"]
            embeds = sum(len(self._div_vals_for(e)) for e in self._choices("d_embed"))
        return layers * embeds

    def log10_size(self) -> float:
        """log10 of the number of distinct architectures (the space is far too big to list)."""
        return math.log10(self.size())

    def check(self, cfg: Config) -> None:
        """Raise ConfigError naming the first field of ``cfg`` outside this space."""
        if cfg.family != self.family:
            raise ConfigError(f"family {cfg.family!r} is not this space's {self.family!r}")
        for key in SEARCHED:
            dim = self.dims[key]
            values = getattr(cfg, key)
            for i, v in enumerate(values if key in PER_LAYER else [values]):
                if v not in dim:
                    where = f"{key}[{i}]" if key in PER_LAYER else key
                    raise ConfigError(f"{where}={v} is outside the space ({dim.to_spec()})")

    # -- construction of configs ------------------------------------------------------------
    def make(self, **genes: Any) -> Config:
        """A config from searched genes plus this space's fixed settings."""
        values = {**self.fixed, **genes}
        n_clusters = len(values.get("cutoffs", ()))
        values.setdefault("tie_projs", [False] + [True] * n_clusters)
        return CONFIG_TYPES[self.family](**values)

    def _layer(self, d_model: int, rng: random.Random) -> tuple[int, int]:
        return rng.choice(self._heads_for(d_model)), self.dims["d_inner"].sample(rng)

    def sample(self, rng: random.Random) -> Config:
        d_model = self.dims["d_model"].sample(rng)
        n_layer = self.dims["n_layer"].sample(rng)
        layers = [self._layer(d_model, rng) for _ in range(n_layer)]
        d_embed = self.dims["d_embed"].sample(rng)
        return self.make(
            n_layer=n_layer,
            d_model=d_model,
            d_embed=d_embed,
            div_val=rng.choice(self._div_vals_for(d_embed)),
            n_head=[h for h, _ in layers],
            d_inner=[di for _, di in layers],
        )

    def _repair(self, genes: dict[str, Any], rng: random.Random) -> Config:
        d_model = genes["d_model"]
        heads = self._heads_for(d_model)
        genes["n_head"] = [h if h in heads else rng.choice(heads) for h in genes["n_head"]]
        div_vals = self._div_vals_for(genes["d_embed"])
        if genes["div_val"] not in div_vals:
            genes["div_val"] = rng.choice(div_vals)
        return self.make(**genes)

    @staticmethod
    def _genes(cfg: Config) -> dict[str, Any]:
        return {k: (list(getattr(cfg, k)) if k in PER_LAYER else getattr(cfg, k)) for k in SEARCHED}

    def mutate(self, cfg: Config, rng: random.Random, prob: float = 0.3) -> Config:
        """Resample each global gene, and each layer's genes, with probability ``prob``.

        A changed ``n_layer`` truncates the layer list or appends freshly sampled layers.
        Retries until the child differs from the parent (a few times at most).
        """
        for _ in range(10):
            g = self._genes(cfg)
            for key in ("d_model", "d_embed", "div_val", "n_layer"):
                if rng.random() < prob:
                    g[key] = self.dims[key].sample(rng)
            n = g["n_layer"]
            while len(g["n_head"]) < n:
                h, di = self._layer(g["d_model"], rng)
                g["n_head"].append(h)
                g["d_inner"].append(di)
            g["n_head"], g["d_inner"] = g["n_head"][:n], g["d_inner"][:n]
            for i in range(n):
                if rng.random() < prob:
                    g["n_head"][i] = rng.choice(self._heads_for(g["d_model"]))
                if rng.random() < prob:
                    g["d_inner"][i] = self.dims["d_inner"].sample(rng)
            child = self._repair(g, rng)
            if child.arch_id != cfg.arch_id:
                return child
        return child

    def crossover(self, a: Config, b: Config, rng: random.Random) -> Config:
        """Uniform crossover: each global gene and each layer from either parent."""
        ga, gb = self._genes(a), self._genes(b)
        g = {k: (ga if rng.random() < 0.5 else gb)[k] for k in ("d_model", "d_embed", "div_val", "n_layer")}
        heads, inners = [], []
        for i in range(g["n_layer"]):
            donors = [p for p in (ga, gb) if i < p["n_layer"]]
            donor = rng.choice(donors)
            heads.append(donor["n_head"][i])
            inners.append(donor["d_inner"][i])
        g["n_head"], g["d_inner"] = heads, inners
        return self._repair(g, rng)

    # -- sampling under a decoder-parameter constraint ------------------------------------------
    # Decoder parameters are a constant of d_model plus one term per layer, and a layer's term is
    # affine in its d_inner: P = C(d) + sum_i a(d, h_i) + slope(d) * d_inner_i (GPT-2 and
    # Transformer-XL alike). The terms are read off decoder_params of 1- and 2-layer configs, so
    # they are exact and follow counts.py. A constrained architecture is then built directly:
    # a (d_model, n_layer) whose reachable interval meets [lo, hi], then layer after layer a width
    # that keeps the rest of the interval reachable by the remaining layers. Rejection sampling
    # would almost never hit a bound near the space's edge.
    def _terms(self, d_model: int) -> _LayerTerms:
        key = ("terms", d_model)
        if key in self._memo:
            return self._memo[key]
        d_embed = self.dims["d_embed"].min
        base = {"d_model": d_model, "d_embed": d_embed, "div_val": self._div_vals_for(d_embed)[0]}

        def count(heads: list[int], inners: list[int]) -> int:
            return decoder_params(self.make(n_layer=len(heads), n_head=heads, d_inner=inners, **base))

        heads = self._heads_for(d_model)
        inner = self.dims["d_inner"]
        h0, di0, di1 = heads[0], inner.min, inner.max
        one = count([h0], [di0])
        const = 2 * one - count([h0, h0], [di0, di0])
        slope = (count([h0], [di1]) - one) // (di1 - di0) if di1 > di0 else 0
        a = {-1: one - const - slope * di0}
        if len(heads) > 1 and count([heads[-1]], [di0]) != one:  # the attention term depends on n_head
            a = {h: count([h], [di0]) - const - slope * di0 for h in heads}
        terms = _LayerTerms(const=const, slope=slope, a=a, heads=heads,
                            t_min=min(a.values()) + slope * di0, t_max=max(a.values()) + slope * di1)
        self._memo[key] = terms
        return terms

    def _n_layer_span(self, d_model: int, lo: int, hi: float) -> tuple[int, int]:
        """[n_min, n_max] of layer counts whose reachable parameter interval meets [lo, hi]."""
        t = self._terms(d_model)
        n_min = max(1, _ceil_div(lo - t.const, t.t_max))
        n_max = int((hi - t.const) // t.t_min) if hi != math.inf else LIMITS["n_layer"]
        return n_min, n_max

    def _feasible_models(self, lo: int, hi: float) -> list[tuple[int, int, int]]:
        """(d_model, n_min, n_max) for every d_model that can reach [lo, hi] with some n_layer choice."""
        key = ("feasible", lo, hi)
        if key not in self._memo:
            out = []
            for d in self._d_model_choices():
                n_min, n_max = self._n_layer_span(d, lo, hi)
                if self.dims["n_layer"].count_between(n_min, n_max):
                    out.append((d, n_min, n_max))
            self._memo[key] = out
        return self._memo[key]

    def decoder_param_range(self) -> tuple[int, int]:
        """(fewest, most) decoder parameters of an architecture of this space."""
        n = self.dims["n_layer"]
        ends = [(t.const + n.min * t.t_min, t.const + n.max * t.t_max)
                for t in (self._terms(d) for d in self._d_model_choices())]
        return min(e[0] for e in ends), max(e[1] for e in ends)

    def can_reach(self, lo: int | None, hi: int | None) -> bool:
        """Whether some (d_model, n_layer) of this space can have decoder parameters in [lo, hi]."""
        return bool(self._feasible_models(lo or 0, math.inf if hi is None else hi))

    def _fill_layers(self, d_model: int, n_layer: int, rng: random.Random, lo: int, hi: float,
                     keep: Sequence[tuple[int, int] | None] = ()) -> list[tuple[int, int]] | None:
        """(n_head, d_inner) per layer so that the total lies in [lo, hi]; ``keep[i]`` is kept where it
        leaves the rest reachable. None when the last layers cannot land inside (narrow windows)."""
        t = self._terms(d_model)
        inner = self.dims["d_inner"]
        low, high = lo - t.const, hi - t.const  # what the layers must add up to
        out: list[tuple[int, int]] = []
        for i in range(n_layer):
            after = n_layer - i - 1
            want_lo, want_hi = low - after * t.t_max, high - after * t.t_min
            if (i < len(keep) and keep[i] is not None
                    and want_lo <= t.a_of(keep[i][0]) + t.slope * keep[i][1] <= want_hi):
                h, di = keep[i]
            else:
                options = []
                for h in t.heads:
                    a = t.a_of(h)
                    if t.slope == 0:
                        span = (inner.min, inner.max) if want_lo <= a <= want_hi else (1, 0)
                    else:
                        top = inner.max if want_hi == math.inf else int((want_hi - a) // t.slope)
                        span = (_ceil_div(want_lo - a, t.slope), top)
                    if inner.count_between(*span):
                        options.append((h, span))
                if not options:
                    return None
                h, span = rng.choice(options)
                di = inner.sample_between(rng, *span)
            term = t.a_of(h) + t.slope * di
            low, high = low - term, high - term
            out.append((h, di))
        return out

    def _build(self, d_model: int, layers: list[tuple[int, int]], d_embed: int, div_val: int) -> Config:
        return self.make(n_layer=len(layers), d_model=d_model, d_embed=d_embed, div_val=div_val,
                         n_head=[h for h, _ in layers], d_inner=[di for _, di in layers])

    def _inside(self, cfg: Config, lo: int, hi: float) -> bool:
        return lo <= decoder_params(cfg) <= hi

    def sample_within(self, rng: random.Random, lo: int | None, hi: int | None, tries: int = 20) -> Config | None:
        """A random architecture with ``lo <= decoder_params <= hi`` (None: unbounded), built directly;
        None when ``tries`` constructions all missed (only a window narrower than a d_inner step can)."""
        low, high = lo or 0, math.inf if hi is None else hi
        models = self._feasible_models(low, high)
        for _ in range(tries if models else 0):
            d_model, n_min, n_max = rng.choice(models)
            n_layer = self.dims["n_layer"].sample_between(rng, n_min, n_max)
            t = self._terms(d_model)
            reach_lo, reach_hi = max(low, t.const + n_layer * t.t_min), min(high, t.const + n_layer * t.t_max)
            if reach_lo > reach_hi:
                continue
            # Filling layers one by one lands at the low end of the window it is given, so every
            # sample would have about `lo` parameters: aim at a uniform target instead, within one
            # d_inner step (the granularity of a layer), and fill the layers in a random order so
            # that the layers that make up the difference are not always the last ones.
            target = rng.randint(int(reach_lo), int(reach_hi))
            slack = max(1, t.slope * self.dims["d_inner"].max_gap)
            layers = (self._fill_layers(d_model, n_layer, rng, target, min(high, target + slack))
                      or self._fill_layers(d_model, n_layer, rng, low, high))
            if layers is None:
                continue
            order = list(range(n_layer))
            rng.shuffle(order)
            placed = [layers[0]] * n_layer
            for position, layer in zip(order, layers):
                placed[position] = layer
            d_embed = self.dims["d_embed"].sample(rng)
            cfg = self._build(d_model, placed, d_embed, rng.choice(self._div_vals_for(d_embed)))
            if self._inside(cfg, low, high):
                return cfg
        return None

    def within(self, cfg: Config, rng: random.Random, lo: int | None, hi: int | None) -> Config | None:
        """``cfg`` moved inside [lo, hi] decoder parameters with as few changes as possible: its layers
        are kept where they leave the bound reachable and redrawn where not; its n_layer changes only
        if no layer widths reach the bound, its d_model (to the nearest that can) only if no n_layer
        does; d_embed and div_val stay. ``cfg`` itself when already inside; None when nothing was found."""
        low, high = lo or 0, math.inf if hi is None else hi
        if self._inside(cfg, low, high):
            return cfg
        spans = {d: (a, b) for d, a, b in self._feasible_models(low, high)}
        if not spans:
            return None
        d_model = cfg.d_model if cfg.d_model in spans else min(spans, key=lambda m: (abs(m - cfg.d_model), m))
        heads = set(self._heads_for(d_model))
        keep: Sequence[tuple[int, int] | None] = [(h, di) if h in heads else None
                                                  for h, di in zip(cfg.n_head, cfg.d_inner)]
        n_min, n_max = spans[d_model]
        n_layer = cfg.n_layer
        if not n_min <= n_layer <= n_max or n_layer not in self.dims["n_layer"]:
            n_layer = self.dims["n_layer"].sample_between(rng, n_min, n_max)
        for _ in range(5):
            layers = self._fill_layers(d_model, n_layer, rng, low, high, keep)
            if layers is not None:
                out = self._build(d_model, layers, cfg.d_embed, cfg.div_val)
                if self._inside(out, low, high):
                    return out
            keep = ()
        return self.sample_within(rng, lo, hi)


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise LtsError(f"{path}: not a text file (not UTF-8)") from None
    except OSError as exc:
        raise LtsError(f"{path}: cannot read ({exc.strerror or exc})") from None


def load_space(source: str | Path) -> SearchSpace:
    """A family name (``gpt2``, ``transxl``) or the path of a JSON/YAML space file."""
    text_source = str(source)
    if text_source in _DEFAULTS:
        return SearchSpace.default(text_source)
    path = Path(source)
    if not path.is_file():
        raise LtsError(f"space {short_repr(text_source)} is neither a family ({', '.join(_DEFAULTS)}) nor a file")
    text = _read_text(path)
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except RecursionError:
        raise LtsError(f"{path}: malformed space file (nested too deeply)") from None
    except Exception as exc:  # json and yaml raise different types; both mean "malformed file"
        first = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        if "4300 digits" in first:  # Python refuses to convert longer integers
            first = "a number of more than 4300 digits"
        raise LtsError(f"{path}: malformed space file ({first})") from None
    try:
        return SearchSpace.from_dict(data, name=path.stem)
    except RecursionError:  # a structure too deep to even compare or print
        raise LtsError(f"{path}: space file nested too deeply") from None
