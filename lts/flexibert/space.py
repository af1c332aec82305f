"""The FlexiBERT benchmark's search space (``search_space.json``): membership, size and seeded sampling.

The published file lists the choices::

    {"hidden_size": [128, 256], "num_encoder_layers": [2, 4],
     "encoder_layer": {"operation_type": ["SA", "LT", "DSC"], "num_operation_heads": [2, 4],
                       "feed_forward_dimension": [512, 1024], "num_feed_forward": [1, 3],
                       "SA": ["SDP", "WMA"], "LT": ["DFT", "DCT"], "DSC": [5, 9]}}

Every layer chooses independently; the hidden size is one per architecture.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from lts.errors import ConfigError, LtsError
from lts.flexibert.config import OPERATION_TYPES, FlexiBertConfig, LayerConfig

SHIPPED_SPACE = Path(__file__).resolve().parent.parent / "data" / "flexibert" / "search_space.json"
_LAYER_DIMS = ("num_operation_heads", "feed_forward_dimension", "num_feed_forward")


def _choices(name: str, value: Any) -> tuple:
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(f"space field {name}: give a non-empty list of choices")
    return tuple(value)


@dataclass(frozen=True)
class FlexiBertSpace:
    hidden_size: tuple[int, ...]
    num_encoder_layers: tuple[int, ...]
    operations: dict[str, tuple]  # operation_type -> operation_parameter choices
    num_operation_heads: tuple[int, ...]
    feed_forward_dimension: tuple[int, ...]
    num_feed_forward: tuple[int, ...]

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> "FlexiBertSpace":
        try:
            layer = spec["encoder_layer"]
            ops = _choices("encoder_layer.operation_type", layer["operation_type"])
            unknown = [o for o in ops if o not in OPERATION_TYPES]
            if unknown:
                raise ConfigError(f"space field encoder_layer.operation_type: unknown operation {unknown[0]!r}")
            return cls(
                hidden_size=_choices("hidden_size", spec["hidden_size"]),
                num_encoder_layers=_choices("num_encoder_layers", spec["num_encoder_layers"]),
                operations={o: _choices(f"encoder_layer.{o}", layer[o]) for o in ops},
                **{k: _choices(f"encoder_layer.{k}", layer[k]) for k in _LAYER_DIMS},
            )
        except KeyError as exc:
            raise ConfigError(f"space file: {exc.args[0]} is missing") from None

    @classmethod
    def load(cls, path: str | Path = SHIPPED_SPACE) -> "FlexiBertSpace":
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except FileNotFoundError:
            raise LtsError(f"{path}: no such space file") from None
        except json.JSONDecodeError as exc:
            raise LtsError(f"{path}: malformed JSON ({exc.msg} at line {exc.lineno})") from None

    @classmethod
    def default(cls) -> "FlexiBertSpace":
        return cls.load(SHIPPED_SPACE)

    # -- membership ---------------------------------------------------------------------
    def check(self, cfg: FlexiBertConfig) -> None:
        """Raise a one-line :class:`ConfigError` naming the first field outside the space."""
        if cfg.hidden_size not in self.hidden_size:
            raise ConfigError(f"hidden_size={cfg.hidden_size} is outside the space {list(self.hidden_size)}")
        if cfg.n_layer not in self.num_encoder_layers:
            raise ConfigError(f"{cfg.n_layer} encoder layers is outside the space {list(self.num_encoder_layers)}")
        for i, layer in enumerate(cfg.layers):
            if layer.operation_type not in self.operations:
                raise ConfigError(f"layer {i}: operation_type={layer.operation_type!r} is outside the space "
                                  f"{list(self.operations)}")
            allowed = self.operations[layer.operation_type]
            if layer.operation_parameter not in allowed:
                raise ConfigError(f"layer {i}: operation_parameter={layer.operation_parameter!r} is outside the "
                                  f"space for {layer.operation_type} {list(allowed)}")
            for dim in _LAYER_DIMS:
                if getattr(layer, dim) not in getattr(self, dim):
                    raise ConfigError(f"layer {i}: {dim}={getattr(layer, dim)} is outside the space "
                                      f"{list(getattr(self, dim))}")

    def contains(self, cfg: FlexiBertConfig) -> bool:
        try:
            self.check(cfg)
        except ConfigError:
            return False
        return True

    # -- size and sampling --------------------------------------------------------------
    def layer_choices(self) -> int:
        per_op = sum(len(v) for v in self.operations.values())
        n = per_op
        for dim in _LAYER_DIMS:
            n *= len(getattr(self, dim))
        return n

    def size(self) -> int:
        """Distinct architectures (hidden sizes x every per-layer combination of every depth)."""
        return len(self.hidden_size) * sum(self.layer_choices() ** n for n in self.num_encoder_layers)

    def sample(self, rng: random.Random) -> FlexiBertConfig:
        """One architecture: depth and hidden size uniform, then every layer choice uniform and independent
        (the operation type first, then its parameter)."""
        n = rng.choice(self.num_encoder_layers)
        hidden = rng.choice(self.hidden_size)
        layers = []
        for _ in range(n):
            op = rng.choice(list(self.operations))
            layers.append(LayerConfig(op, rng.choice(self.operations[op]),
                                      *(rng.choice(getattr(self, d)) for d in _LAYER_DIMS)))
        return FlexiBertConfig(hidden_size=hidden, layers=tuple(layers))
