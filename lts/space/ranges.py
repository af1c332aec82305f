"""Search spaces: the ranges of each hyperparameter, with seeded sampling, mutation and crossover.

A space file (JSON or YAML) names a family and, for each searchable hyperparameter, either a list
of choices or a ``{"min", "max", "step"}`` range; fixed settings (vocabulary, cutoffs, sequence and
memory lengths) are plain values. Omitted keys take LTS's defaults::

    {"family": "gpt2", "n_layer": {"min": 2, "max": 8}, "d_model": [128, 256],
     "n_head": [2, 4, 8], "d_inner": {"min": 512, "max": 2048, "step": 64}, "vocab_size": 4096}

Every random choice takes an explicit ``random.Random`` so searches are reproducible from a seed.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from lts.errors import ConfigError, LtsError
from lts.space.config import CONFIG_TYPES, Config, clip_cutoffs

SEARCHED = ("n_layer", "d_model", "d_embed", "div_val", "n_head", "d_inner")
PER_LAYER = ("n_head", "d_inner")
FIXED = ("vocab_size", "cutoffs", "tgt_len", "mem_len", "tie_weight", "tie_projs", "d_head")


@dataclass(frozen=True)
class Dim:
    """One searchable hyperparameter: an explicit list of choices, or an integer range."""

    values: tuple[int, ...] = ()
    lo: int = 0
    hi: int = 0
    step: int = 1

    @classmethod
    def parse(cls, name: str, spec: Any) -> "Dim":
        if isinstance(spec, Mapping):
            extra = set(spec) - {"min", "max", "step"}
            if extra or not {"min", "max"} <= set(spec):
                raise ConfigError(f"space field {name}: a range needs min and max (and optional step)")
            lo, hi, step = spec["min"], spec["max"], spec.get("step", 1)
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in (lo, hi, step)):
                raise ConfigError(f"space field {name}: min, max and step must be integers")
            if step < 1 or lo < 1 or hi < lo:
                raise ConfigError(f"space field {name}: need 1 <= min <= max and step >= 1")
            return cls(lo=lo, hi=hi, step=step)
        if isinstance(spec, int) and not isinstance(spec, bool):
            spec = [spec]
        if not isinstance(spec, (list, tuple)) or not spec:
            raise ConfigError(f"space field {name}: give a non-empty list of choices or a min/max range")
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in spec):
            raise ConfigError(f"space field {name}: choices must be positive integers")
        return cls(values=tuple(sorted(set(spec))))

    @property
    def is_range(self) -> bool:
        return not self.values

    def __len__(self) -> int:
        return len(self.values) if self.values else (self.hi - self.lo) // self.step + 1

    def __contains__(self, v: object) -> bool:
        if self.values:
            return v in self.values
        return isinstance(v, int) and self.lo <= v <= self.hi and (v - self.lo) % self.step == 0

    def sample(self, rng: random.Random) -> int:
        if self.values:
            return rng.choice(self.values)
        return self.lo + self.step * rng.randrange(len(self))

    def to_spec(self) -> Any:
        if self.values:
            return list(self.values)
        spec = {"min": self.lo, "max": self.hi}
        if self.step != 1:
            spec["step"] = self.step
        return spec


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

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_dict(cls, spec: Mapping[str, Any], name: str = "") -> "SearchSpace":
        if not isinstance(spec, Mapping):
            raise ConfigError("a space file must hold a JSON/YAML object")
        spec = dict(spec)
        family = spec.pop("family", None)
        if family not in _DEFAULTS:
            raise ConfigError(f"space family must be one of {sorted(_DEFAULTS)}, got {family!r}")
        name = spec.pop("name", name) or family
        cfg_cls = CONFIG_TYPES[family]
        allowed = set(SEARCHED) | {f for f in FIXED if f in cfg_cls.__dataclass_fields__}
        unknown = sorted(set(spec) - allowed)
        if unknown:
            raise ConfigError(f"unknown space field {unknown[0]!r} for family {family!r}")
        merged = {**_DEFAULTS[family], **spec}
        dims = {k: Dim.parse(k, merged[k]) for k in SEARCHED}
        fixed = {k: merged[k] for k in FIXED if k in merged}
        vocab = fixed.get("vocab_size")
        if "cutoffs" in fixed and isinstance(vocab, int):
            # LTS reuses one cutoff list for every vocabulary; cutoffs past it are dropped.
            fixed["cutoffs"] = clip_cutoffs(fixed["cutoffs"], vocab)
        space = cls(family=family, dims=dims, fixed=fixed, name=name)
        for d_model in space._d_model_choices():
            if not space._heads_for(d_model):
                raise ConfigError(f"space field n_head: no choice divides d_model={d_model}")
        for d_embed in space._choices("d_embed"):
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
        dim = self.dims[key]
        return dim.values or range(dim.lo, dim.hi + 1, dim.step)

    def _d_model_choices(self) -> Sequence[int]:
        return self._choices("d_model")

    def _heads_for(self, d_model: int) -> list[int]:
        return [h for h in self._choices("n_head") if d_model % h == 0]

    def _div_vals_for(self, d_embed: int) -> list[int]:
        """div_val choices that leave every adaptive cluster at least one embedding column."""
        n_clusters = len(self.fixed.get("cutoffs", ()))
        return [v for v in self._choices("div_val") if v == 1 or d_embed // v**n_clusters >= 1]

    def log10_size(self) -> float:
        """log10 of the number of distinct architectures (the space is far too big to list)."""
        d = self.dims
        per_model = [len(self._heads_for(m)) * len(d["d_inner"]) for m in self._d_model_choices()]
        total = sum(p**n for p in per_model for n in self._choices("n_layer"))
        embeds = sum(len(self._div_vals_for(e)) for e in self._choices("d_embed"))
        return math.log10(total * embeds)

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


def load_space(source: str | Path) -> SearchSpace:
    """A family name (``gpt2``, ``transxl``) or the path of a JSON/YAML space file."""
    text_source = str(source)
    if text_source in _DEFAULTS:
        return SearchSpace.default(text_source)
    path = Path(source)
    if not path.is_file():
        raise LtsError(f"space {text_source!r} is neither a family ({', '.join(_DEFAULTS)}) nor a file")
    text = path.read_text()
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:  # json and yaml raise different types; both mean "malformed file"
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise LtsError(f"{path}: malformed space file ({first})") from None
    return SearchSpace.from_dict(data, name=path.stem)
