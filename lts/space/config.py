"""Typed, validated architecture configs for the two LTS families, with canonical JSON and a stable id.

A config describes one architecture completely (everything that changes the parameter count,
the FLOPs or the latency), and nothing about training. Both families share the projected
adaptive input embedding / adaptive softmax of Transformer-XL (as LTS's ``hf_gpt2_flex`` does):

* ``gpt2``   -- GPT-2 decoder (learned absolute positions over ``tgt_len`` slots), heterogeneous
                ``n_head`` and ``d_inner`` per layer.
* ``transxl`` -- Transformer-XL ``mem_transformer`` (relative positional attention, recurrence
                memory of ``mem_len`` steps), heterogeneous ``n_head`` and ``d_inner`` per layer.
* ``darts``  -- an architecture derived by the differentiable search (:mod:`lts.darts`): reversible
                multi-split layers, one operation per split and layer. Not a searchable space.

Structural rules (divisibility, list lengths, positive sizes, cutoffs inside the vocabulary) are
checked here; whether a config lies inside a particular search space's ranges is the space's job
(:mod:`lts.space.ranges`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Union

from lts.errors import ConfigError

FAMILIES = ("gpt2", "transxl")  # the searchable spaces; CONFIG_TYPES adds the derived "darts" family


def checked_int(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum`` (an integral float is accepted), else a one-line ConfigError."""
    # bool is an int subclass; a JSON `true` for a width is a mistake, not a 1.
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ConfigError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def _int_list(name: str, value: Any, length: int, minimum: int = 1) -> tuple[int, ...]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value] * length  # a scalar means "the same in every layer"
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{name} must be a list of {length} integers, got {value!r}")
    if len(value) != length:
        raise ConfigError(f"{name} has {len(value)} entries but n_layer is {length}")
    return tuple(checked_int(f"{name}[{i}]", v, minimum) for i, v in enumerate(value))


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    return value


@dataclass(frozen=True)
class _Base:
    """Fields and rules shared by both families."""

    family: ClassVar[str] = ""

    n_layer: int
    d_model: int
    d_embed: int
    div_val: int
    n_head: tuple[int, ...]
    d_inner: tuple[int, ...]
    vocab_size: int
    cutoffs: tuple[int, ...]
    tie_weight: bool
    tie_projs: tuple[bool, ...]
    tgt_len: int

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen dataclass: normalise in place once, at construction
        n_layer = checked_int("n_layer", self.n_layer)
        set_(self, "n_layer", n_layer)
        set_(self, "d_model", checked_int("d_model", self.d_model))
        d_embed = self.d_embed
        if d_embed == -1:  # LTS's convention: -1 means "same as d_model"
            d_embed = self.d_model
        set_(self, "d_embed", checked_int("d_embed", d_embed))
        div_val = checked_int("div_val", self.div_val)
        set_(self, "div_val", div_val)
        set_(self, "n_head", _int_list("n_head", self.n_head, n_layer))
        set_(self, "d_inner", _int_list("d_inner", self.d_inner, n_layer))
        vocab = checked_int("vocab_size", self.vocab_size, minimum=2)
        set_(self, "vocab_size", vocab)
        set_(self, "tgt_len", checked_int("tgt_len", self.tgt_len))
        set_(self, "tie_weight", _bool("tie_weight", self.tie_weight))

        if not isinstance(self.cutoffs, (list, tuple)):
            raise ConfigError(f"cutoffs must be a list of integers, got {self.cutoffs!r}")
        cutoffs = tuple(checked_int(f"cutoffs[{i}]", c) for i, c in enumerate(self.cutoffs))
        if any(b <= a for a, b in zip(cutoffs, cutoffs[1:])):
            raise ConfigError(f"cutoffs must be strictly increasing, got {list(cutoffs)}")
        if cutoffs and cutoffs[-1] >= vocab:
            raise ConfigError(
                f"cutoffs must lie below vocab_size={vocab}, got {list(cutoffs)}"
                " (use lts.space.config.clip_cutoffs to drop the outer ones)"
            )
        set_(self, "cutoffs", cutoffs)
        n_clusters = len(cutoffs) + 1
        tie_projs = self.tie_projs
        if isinstance(tie_projs, bool):
            tie_projs = [tie_projs] * n_clusters
        if not isinstance(tie_projs, (list, tuple)) or len(tie_projs) != n_clusters:
            raise ConfigError(
                f"tie_projs must be a list of {n_clusters} booleans (one per adaptive cluster), "
                f"got {tie_projs!r}"
            )
        set_(self, "tie_projs", tuple(_bool(f"tie_projs[{i}]", t) for i, t in enumerate(tie_projs)))

        for i, d_emb_i in enumerate(self.cluster_dims()):
            if d_emb_i < 1:
                raise ConfigError(
                    f"div_val={div_val} leaves cluster {i} with no embedding width "
                    f"(d_embed={self.d_embed}); lower div_val or remove cutoffs"
                )

    # -- derived quantities -------------------------------------------------------------
    def cluster_dims(self) -> list[int]:
        """Embedding width of each adaptive cluster (head first)."""
        if self.div_val == 1:
            return [self.d_embed] * (len(self.cutoffs) + 1)
        return [self.d_embed // (self.div_val**i) for i in range(len(self.cutoffs) + 1)]

    def cluster_sizes(self) -> list[int]:
        """Number of vocabulary entries in each adaptive cluster (head first)."""
        ends = [0, *self.cutoffs, self.vocab_size]
        return [b - a for a, b in zip(ends, ends[1:])]

    # -- serialisation ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"family": self.family}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out

    def canonical_json(self) -> str:
        """Sorted keys, no whitespace: identical architectures give identical bytes."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @property
    def arch_id(self) -> str:
        """Stable id: the first 16 hex digits of the SHA-256 of the canonical JSON."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:16]

    def replace(self, **changes: Any) -> "Config":
        return dataclasses.replace(self, **changes)  # type: ignore[return-value]

    @property
    def is_homogeneous(self) -> bool:
        return len(set(self.n_head)) == 1 and len(set(self.d_inner)) == 1


@dataclass(frozen=True)
class GPT2Config(_Base):
    """GPT-2 decoder with per-layer heads and FFN widths (LTS's ``hf_gpt2_flex``).

    Positions are learned for ``tgt_len`` slots (``n_positions`` in GPT-2 terms), as in LTS.
    """

    family: ClassVar[str] = "gpt2"

    n_layer: int = 4
    d_model: int = 256
    d_embed: int = 256
    div_val: int = 1
    n_head: tuple[int, ...] = 4  # type: ignore[assignment]  # a scalar broadcasts to every layer
    d_inner: tuple[int, ...] = 1024  # type: ignore[assignment]
    vocab_size: int = 50264
    cutoffs: tuple[int, ...] = (19997, 39997)
    tie_weight: bool = True
    tie_projs: tuple[bool, ...] = (False, True, True)
    tgt_len: int = 192

    def __post_init__(self) -> None:
        super().__post_init__()
        for i, h in enumerate(self.n_head):
            if self.d_model % h:
                raise ConfigError(
                    f"n_head[{i}]={h} does not divide d_model={self.d_model}"
                )


@dataclass(frozen=True)
class TransXLConfig(_Base):
    """Transformer-XL (``mem_transformer``) with relative positional attention and memory.

    ``d_head=-1`` (the LTS default) gives each layer ``d_model // n_head[i]`` per head.
    """

    family: ClassVar[str] = "transxl"

    n_layer: int = 4
    d_model: int = 256
    d_embed: int = 256
    div_val: int = 1
    n_head: tuple[int, ...] = 4  # type: ignore[assignment]  # a scalar broadcasts to every layer
    d_inner: tuple[int, ...] = 1024  # type: ignore[assignment]
    vocab_size: int = 267736
    cutoffs: tuple[int, ...] = (19997, 39997, 199997)
    tie_weight: bool = True
    tie_projs: tuple[bool, ...] = (False, True, True, True)
    tgt_len: int = 192
    mem_len: int = 192
    d_head: int = -1

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "mem_len", checked_int("mem_len", self.mem_len, minimum=0))
        if self.d_head == -1:
            for i, h in enumerate(self.n_head):
                if self.d_model % h:
                    raise ConfigError(
                        f"n_head[{i}]={h} does not divide d_model={self.d_model} (d_head=-1)"
                    )
        else:
            object.__setattr__(self, "d_head", checked_int("d_head", self.d_head))
        if self.d_model % 2:
            raise ConfigError(
                f"d_model must be even for sinusoidal relative positions, got {self.d_model}"
            )

    def head_dim(self, layer: int) -> int:
        return self.d_model // self.n_head[layer] if self.d_head == -1 else self.d_head


# The candidate operations of the differentiable search (lts.darts), by name; a name with a number
# carries its size (heads or kernel width). Their definitions live in lts.models.darts_ops.
DARTS_OP_KINDS = ("attn", "conv", "lightconv", "dynconv")
DARTS_PLAIN_OPS = ("glu", "ffn", "identity", "zero")


def parse_darts_op(name: Any) -> tuple[str, int]:
    """``"attn4"`` -> ``("attn", 4)``, ``"ffn"`` -> ``("ffn", 0)``; anything else is a ConfigError."""
    if isinstance(name, str):
        if name in DARTS_PLAIN_OPS:
            return name, 0
        for kind in sorted(DARTS_OP_KINDS, key=len, reverse=True):
            rest = name[len(kind):]
            if name.startswith(kind) and rest.isdigit() and int(rest) >= 1:
                return kind, int(rest)
    raise ConfigError(
        f"unknown operation {name!r}: expected one of {', '.join(DARTS_PLAIN_OPS)} or "
        "attn<heads>, conv<kernel>, lightconv<kernel>, dynconv<kernel>"
    )


@dataclass(frozen=True)
class DartsConfig:
    """A discrete architecture derived by the differentiable search (``lts darts``).

    A causal LM whose blocks are multi-split reversible layers: the hidden state is split along
    the features into ``n_split`` parts of ``d_model // n_split``, and ``ops[layer][k]`` is the
    operation that updates part ``k`` from the (mean-pooled) other parts. Token embedding tied to
    the output layer, learned positions over ``tgt_len`` slots, a final LayerNorm.
    """

    family: ClassVar[str] = "darts"

    n_layer: int = 2
    d_model: int = 256
    n_split: int = 2
    ops: tuple[tuple[str, ...], ...] = (("attn4", "ffn"), ("conv5", "ffn"))
    vocab_size: int = 2048
    tgt_len: int = 192
    ffn_mult: int = 4
    conv_heads: int = 4  # weight-sharing heads of lightconv / dynconv

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        n_layer = checked_int("n_layer", self.n_layer)
        set_(self, "n_layer", n_layer)
        d = checked_int("d_model", self.d_model)
        set_(self, "d_model", d)
        n_split = checked_int("n_split", self.n_split, minimum=2)
        set_(self, "n_split", n_split)
        if d % n_split:
            raise ConfigError(f"n_split={n_split} does not divide d_model={d}")
        set_(self, "vocab_size", checked_int("vocab_size", self.vocab_size, minimum=2))
        set_(self, "tgt_len", checked_int("tgt_len", self.tgt_len))
        set_(self, "ffn_mult", checked_int("ffn_mult", self.ffn_mult))
        heads = checked_int("conv_heads", self.conv_heads)
        set_(self, "conv_heads", heads)
        width = d // n_split
        if not isinstance(self.ops, (list, tuple)) or len(self.ops) != n_layer:
            raise ConfigError(f"ops must list {n_layer} layers (n_layer), got {self.ops!r}")
        layers = []
        for i, layer in enumerate(self.ops):
            if not isinstance(layer, (list, tuple)) or len(layer) != n_split:
                raise ConfigError(f"ops[{i}] must list {n_split} operations (n_split), got {layer!r}")
            for k, name in enumerate(layer):
                try:
                    kind, size = parse_darts_op(name)
                except ConfigError as exc:
                    raise ConfigError(f"ops[{i}][{k}]: {exc}") from None
                if kind == "attn" and width % size:
                    raise ConfigError(f"ops[{i}][{k}]={name}: {size} heads do not divide the split width {width}")
                if kind in ("lightconv", "dynconv") and width % heads:
                    raise ConfigError(f"ops[{i}][{k}]={name}: conv_heads={heads} does not divide the split width {width}")
            layers.append(tuple(layer))
        set_(self, "ops", tuple(layers))

    @property
    def split_width(self) -> int:
        return self.d_model // self.n_split

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"family": self.family}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = [list(x) for x in v] if f.name == "ops" else v
        return out

    canonical_json = _Base.canonical_json
    arch_id = _Base.arch_id
    replace = _Base.replace


Config = Union[GPT2Config, TransXLConfig, DartsConfig]
CONFIG_TYPES: dict[str, type] = {"gpt2": GPT2Config, "transxl": TransXLConfig, "darts": DartsConfig}


def clip_cutoffs(cutoffs: list[int] | tuple[int, ...], vocab_size: int) -> list[int]:
    """Drop cutoffs at or beyond the vocabulary, as LTS does when it reuses WT103 cutoffs."""
    return [int(c) for c in cutoffs if int(c) < vocab_size]


def config_from_dict(data: Mapping[str, Any], family: str | None = None) -> Config:
    """Build and validate a config from a plain mapping (parsed JSON/YAML).

    Unknown keys are refused, so that a typo ("n_heads") is not silently ignored.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"a config must be a JSON object, got {type(data).__name__}")
    data = dict(data)
    fam = data.pop("family", None) or family
    if family is not None and fam != family:
        raise ConfigError(f"family is {fam!r} but {family!r} was expected")
    if fam not in CONFIG_TYPES:
        raise ConfigError(f"family must be one of {list(CONFIG_TYPES)}, got {fam!r}")
    cls = CONFIG_TYPES[fam]
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r} for family {fam!r}")
    if "n_layer" not in data:
        raise ConfigError("n_layer is required")
    vocab = data.get("vocab_size")
    if cls is DartsConfig:
        return cls(**data)
    if "cutoffs" not in data and isinstance(vocab, int) and not isinstance(vocab, bool):
        data["cutoffs"] = clip_cutoffs(cls().cutoffs, vocab)
    if "tie_projs" not in data and isinstance(data.get("cutoffs"), (list, tuple)):
        data["tie_projs"] = [False] + [True] * len(data["cutoffs"])
    return cls(**data)


def config_from_json(text: str, source: str = "config") -> Config:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{source}: malformed JSON ({exc.msg} at line {exc.lineno})") from None
    return config_from_dict(data)
