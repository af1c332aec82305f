"""FlexiBERT encoder architectures: typed, validated configs in the benchmark's own record format.

A config is what one record of the FlexiBERT benchmark (Serianni & Kalita, ACL 2023, on Tuli et
al.'s FlexiBERT space) specifies: a hidden size for the whole encoder and, for each layer, one
token-mixing *operation* and a stack of feed-forward layers::

    {"hidden_size": 256, "encoder_layers": [
        {"operation_type": "SA", "operation_parameter": "WMA", "num_operation_heads": 4,
         "feed_forward_dimension": 1024, "num_feed_forward": 3}, ...]}

Here, only the *structural* rules are checked (known operations, a parameter that fits the
operation, positive sizes, heads that divide the hidden size), so that any well-formed record builds;
whether it lies inside the published space is :class:`lts.flexibert.space.FlexiBertSpace`'s job.
Messages are one line and name the field, as for the LM families (:mod:`lts.space.config`).

The embedding sizes are not part of a record: they are ELECTRA-small's, the defaults of the
benchmark's model code (vocabulary 30522, embedding width 128, 512 positions, 2 token types).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

from lts.errors import ConfigError
from lts.space.config import checked_int

FAMILY = "flexibert"
# operation_type -> the operation_parameter values it accepts (DSC: any odd kernel width).
SA_KINDS = ("SDP", "WMA")
LT_KINDS = ("DFT", "DCT")
OPERATION_TYPES = ("SA", "LT", "DSC")
LAYER_KEYS = ("operation_type", "operation_parameter", "num_operation_heads", "feed_forward_dimension",
              "num_feed_forward")


@dataclass(frozen=True)
class LayerConfig:
    """One encoder layer: a token-mixing operation, then ``num_feed_forward`` stacked FFN layers."""

    operation_type: str
    operation_parameter: str | int
    num_operation_heads: int
    feed_forward_dimension: int
    num_feed_forward: int

    def check(self, where: str) -> "LayerConfig":
        """A normalised copy, or a :class:`ConfigError` naming ``where`` and the field."""
        op = self.operation_type
        if op not in OPERATION_TYPES:
            raise ConfigError(f"{where}: operation_type must be one of {', '.join(OPERATION_TYPES)}, got {op!r}")
        param = self.operation_parameter
        if op == "SA" and param not in SA_KINDS:
            raise ConfigError(f"{where}: operation_parameter for SA must be SDP or WMA, got {param!r}")
        if op == "LT" and param not in LT_KINDS:
            raise ConfigError(f"{where}: operation_parameter for LT must be DFT or DCT, got {param!r}")
        if op == "DSC":
            if isinstance(param, str) and param.isdigit():
                param = int(param)
            param = checked_int(f"{where}: operation_parameter (DSC kernel size)", param)
            if param % 2 == 0:  # 'same' padding needs a centre tap
                raise ConfigError(f"{where}: operation_parameter (DSC kernel size) must be odd, got {param}")
        heads = checked_int(f"{where}: num_operation_heads", self.num_operation_heads)
        if op == "DSC" and heads % 2:
            # Half of the heads attend and half convolve; their outputs are concatenated back to hidden_size.
            raise ConfigError(f"{where}: num_operation_heads must be even for DSC (half attend, half convolve), got {heads}")
        return LayerConfig(op, param, heads, checked_int(f"{where}: feed_forward_dimension", self.feed_forward_dimension),
                           checked_int(f"{where}: num_feed_forward", self.num_feed_forward))

    @classmethod
    def from_dict(cls, data: Any, where: str) -> "LayerConfig":
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: an encoder layer must be a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - set(LAYER_KEYS))
        if unknown:
            raise ConfigError(f"{where}: unknown key {unknown[0]!r} (expected {', '.join(LAYER_KEYS)})")
        missing = [k for k in LAYER_KEYS if k not in data]
        if missing:
            raise ConfigError(f"{where}: {missing[0]} is missing")
        return cls(**{k: data[k] for k in LAYER_KEYS}).check(where)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def label(self) -> str:
        """Short name of the operation, e.g. ``SA-WMA``, ``LT-DFT``, ``DSC-9``."""
        return f"{self.operation_type}-{self.operation_parameter}"


@dataclass(frozen=True)
class FlexiBertConfig:
    """A FlexiBERT encoder: per-architecture hidden size, per-layer operation and FFN stack."""

    family: ClassVar[str] = FAMILY

    hidden_size: int
    layers: tuple[LayerConfig, ...]
    # ELECTRA-small's embedding block (not in the records; the benchmark's model code defaults).
    vocab_size: int = 30522
    embedding_size: int = 128
    max_position_embeddings: int = 512
    type_vocab_size: int = 2

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise once, at construction
        hidden = checked_int("hidden_size", self.hidden_size)
        set_(self, "hidden_size", hidden)
        if not isinstance(self.layers, (list, tuple)) or not self.layers:
            raise ConfigError(f"encoder_layers must be a non-empty list, got {self.layers!r}")
        layers = []
        for i, layer in enumerate(self.layers):
            where = f"layer {i}"
            layer = LayerConfig.from_dict(layer, where) if isinstance(layer, Mapping) else layer
            if not isinstance(layer, LayerConfig):
                raise ConfigError(f"{where}: an encoder layer must be a JSON object, got {type(layer).__name__}")
            layer = layer.check(where)
            if hidden % layer.num_operation_heads:
                raise ConfigError(f"{where}: num_operation_heads={layer.num_operation_heads} does not divide "
                                  f"hidden_size={hidden}")
            layers.append(layer)
        set_(self, "layers", tuple(layers))
        set_(self, "vocab_size", checked_int("vocab_size", self.vocab_size, minimum=2))
        set_(self, "embedding_size", checked_int("embedding_size", self.embedding_size))
        set_(self, "max_position_embeddings", checked_int("max_position_embeddings", self.max_position_embeddings))
        set_(self, "type_vocab_size", checked_int("type_vocab_size", self.type_vocab_size))

    @property
    def n_layer(self) -> int:
        return len(self.layers)

    # -- serialisation ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The record's ``model_hparam_overrides`` shape, plus the embedding sizes when not the defaults."""
        out: dict[str, Any] = {"hidden_size": self.hidden_size,
                               "encoder_layers": [layer.to_dict() for layer in self.layers]}
        for f in dataclasses.fields(self):
            if f.name not in ("hidden_size", "layers") and getattr(self, f.name) != f.default:
                out[f.name] = getattr(self, f.name)
        return out

    def canonical_json(self) -> str:
        return json.dumps({"family": FAMILY, **self.to_dict()}, sort_keys=True, separators=(",", ":"))

    @property
    def arch_id(self) -> str:
        """Stable id: the first 16 hex digits of the SHA-256 of the canonical JSON (as for the LM families)."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:16]

    def replace(self, **changes: Any) -> "FlexiBertConfig":
        return dataclasses.replace(self, **changes)

    def with_layers(self, **changes: Any) -> "FlexiBertConfig":
        """The same architecture with ``changes`` applied to every layer (e.g. ``feed_forward_dimension=1024``)."""
        return self.replace(layers=tuple(dataclasses.replace(layer, **changes) for layer in self.layers))

    def describe(self) -> str:
        """One line: ``h256 | SA-WMA/4h/3x1024 | LT-DCT/2h/3x512 | ...``."""
        parts = [f"{l.label}/{l.num_operation_heads}h/{l.num_feed_forward}x{l.feed_forward_dimension}"
                 for l in self.layers]
        return " | ".join([f"h{self.hidden_size}", *parts])


def config_from_dict(data: Any, source: str = "config") -> FlexiBertConfig:
    """A config from ``{"hidden_size", "encoder_layers"[, embedding sizes]}`` (unknown keys refused)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: a FlexiBERT config must be a JSON object, got {type(data).__name__}")
    data = dict(data)
    if data.pop("family", FAMILY) != FAMILY:
        raise ConfigError(f"{source}: family must be {FAMILY!r}")
    known = {"hidden_size", "encoder_layers", "vocab_size", "embedding_size", "max_position_embeddings",
             "type_vocab_size"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown key {unknown[0]!r} for family {FAMILY!r}")
    for key in ("hidden_size", "encoder_layers"):
        if key not in data:
            raise ConfigError(f"{source}: {key} is missing")
    layers = data.pop("encoder_layers")
    if not isinstance(layers, (list, tuple)) or not layers:
        raise ConfigError(f"{source}: encoder_layers must be a non-empty list, got {layers!r}")
    try:
        parsed = tuple(LayerConfig.from_dict(layer, f"layer {i}") for i, layer in enumerate(layers))
        return FlexiBertConfig(layers=parsed, **data)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
