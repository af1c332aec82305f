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
import reprlib
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Union

from lts.errors import ConfigError

FAMILIES = ("gpt2", "transxl")  # the searchable spaces; CONFIG_TYPES adds the derived "darts" family

# -- limits -------------------------------------------------------------------------------------
# The largest value of every size a config, a space file or a search/measure flag can give, in one
# place. They lie far above any model lts can build and measure (LTS's largest: 16 layers of
# d_model 1024) and exist so that no input makes lts loop or allocate for minutes: per-layer lists
# are n_layer long, counts loop over layers and clusters, and space queries loop over choices.
LIMITS: dict[str, int] = {
    "n_layer": 256,
    "d_model": 65_536,
    "d_embed": 65_536,
    "div_val": 1_024,
    "n_head": 65_536,  # and at most d_model (a head narrower than one feature is meaningless)
    "d_inner": 262_144,
    "d_head": 65_536,
    "vocab_size": 10_000_000,
    "cutoffs": 16,  # entries, i.e. at most 17 adaptive clusters
    "tgt_len": 65_536,
    "mem_len": 65_536,
    # darts configs
    "n_split": 64,
    "ffn_mult": 64,
    "conv_heads": 65_536,
    "op_size": 4_096,  # the number in attn<heads>, conv<kernel>, ...
    # search spaces: distinct values one searched field may list (n_layer and d_inner are only
    # bounded by their value limits: queries use their ends, never every value)
    "space_choices": 4_096,
    # search and measurement settings (lts search / lts measure flags, SearchSettings, Protocol)
    "population": 10_000,
    "generation": 10_000,
    "batch": 4_096,
    "seq_len": 65_536,
    "prompt_len": 65_536,
    "new_tokens": 65_536,
    "threads": 1_024,
    "surrogate_pool": 1_000,
    "timeout_s": 86_400,  # lts measure --timeout, seconds per candidate
    "memory_mb": 1_000_000_000,  # lts measure --memory-limit-mb
}

_short = reprlib.Repr()
_short.maxstring = _short.maxother = _short.maxlong = 40
_short.maxlist = _short.maxtuple = _short.maxdict = _short.maxset = 4
_short.maxlevel = 2


def short_repr(value: Any, limit: int = 60) -> str:
    """A repr short enough for a one-line message, whatever the value (deep, huge, self-sharing)."""
    text = _short.repr(value)  # reprlib bounds the work; the cut bounds the width
    return text if len(text) <= limit else text[: limit - 3] + "..."


def checked_int(name: str, value: Any, minimum: int = 1, maximum: int | None = None) -> int:
    """``value`` as an int in [minimum, maximum] (an integral float is accepted), else a one-line ConfigError."""
    # bool is an int subclass; a JSON `true` for a width is a mistake, not a 1.
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ConfigError(f"{name} must be an integer, got {short_repr(value)}")
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {short_repr(value)}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name} must be <= {maximum:,}, got {short_repr(value)}")
    return value


def limited_int(name: str, value: Any, minimum: int = 1, field: str | None = None) -> int:
    """:func:`checked_int` bounded by ``LIMITS[field or name]``."""
    return checked_int(name, value, minimum, LIMITS[field or name])


def _int_list(name: str, value: Any, length: int, minimum: int = 1) -> tuple[int, ...]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value] * length  # a scalar means "the same in every layer" (length is bounded)
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{name} must be a list of {length} integers, got {short_repr(value)}")
    if len(value) != length:
        raise ConfigError(f"{name} has {len(value)} entries but n_layer is {length}")
    return tuple(checked_int(f"{name}[{i}]", v, minimum, LIMITS[name]) for i, v in enumerate(value))


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, got {short_repr(value)}")
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
        n_layer = limited_int("n_layer", self.n_layer)  # first: per-layer lists are this long
        set_(self, "n_layer", n_layer)
        d_model = limited_int("d_model", self.d_model)
        set_(self, "d_model", d_model)
        d_embed = self.d_embed
        if d_embed == -1:  # LTS's convention: -1 means "same as d_model"
            d_embed = d_model
        set_(self, "d_embed", limited_int("d_embed", d_embed))
        div_val = limited_int("div_val", self.div_val)
        set_(self, "div_val", div_val)
        set_(self, "n_head", _int_list("n_head", self.n_head, n_layer))
        for i, h in enumerate(self.n_head):
            if h > d_model:
                raise ConfigError(f"n_head[{i}]={h} is more heads than d_model={d_model} features")
        set_(self, "d_inner", _int_list("d_inner", self.d_inner, n_layer))
        vocab = limited_int("vocab_size", self.vocab_size, minimum=2)
        set_(self, "vocab_size", vocab)
        set_(self, "tgt_len", limited_int("tgt_len", self.tgt_len))
        set_(self, "tie_weight", _bool("tie_weight", self.tie_weight))

        if not isinstance(self.cutoffs, (list, tuple)):
            raise ConfigError(f"cutoffs must be a list of integers, got {short_repr(self.cutoffs)}")
        if len(self.cutoffs) > LIMITS["cutoffs"]:
            raise ConfigError(f"cutoffs has {len(self.cutoffs)} entries, at most {LIMITS['cutoffs']}")
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
                f"got {short_repr(tie_projs)}"
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
        object.__setattr__(self, "mem_len", limited_int("mem_len", self.mem_len, minimum=0))
        if self.d_head == -1:
            for i, h in enumerate(self.n_head):
                if self.d_model % h:
                    raise ConfigError(
                        f"n_head[{i}]={h} does not divide d_model={self.d_model} (d_head=-1)"
                    )
        else:
            object.__setattr__(self, "d_head", limited_int("d_head", self.d_head))
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
            # isascii: str.isdigit() also accepts digits int() refuses ("²"); len: int() of a huge
            # digit string is slow, and the limit has at most 4 digits anyway
            if name.startswith(kind) and rest.isascii() and rest.isdigit() and len(rest) <= 6:
                if 1 <= int(rest) <= LIMITS["op_size"]:
                    return kind, int(rest)
                raise ConfigError(f"operation {name!r}: the size must lie in 1..{LIMITS['op_size']}")
    raise ConfigError(
        f"unknown operation {short_repr(name)}: expected one of {', '.join(DARTS_PLAIN_OPS)} or "
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
        n_layer = limited_int("n_layer", self.n_layer)
        set_(self, "n_layer", n_layer)
        d = limited_int("d_model", self.d_model)
        set_(self, "d_model", d)
        n_split = limited_int("n_split", self.n_split, minimum=2)
        set_(self, "n_split", n_split)
        if d % n_split:
            raise ConfigError(f"n_split={n_split} does not divide d_model={d}")
        set_(self, "vocab_size", limited_int("vocab_size", self.vocab_size, minimum=2))
        set_(self, "tgt_len", limited_int("tgt_len", self.tgt_len))
        set_(self, "ffn_mult", limited_int("ffn_mult", self.ffn_mult))
        heads = limited_int("conv_heads", self.conv_heads)
        set_(self, "conv_heads", heads)
        width = d // n_split
        if not isinstance(self.ops, (list, tuple)) or len(self.ops) != n_layer:
            raise ConfigError(f"ops must list {n_layer} layers (n_layer), got {short_repr(self.ops)}")
        layers = []
        for i, layer in enumerate(self.ops):
            if not isinstance(layer, (list, tuple)) or len(layer) != n_split:
                raise ConfigError(f"ops[{i}] must list {n_split} operations (n_split), got {short_repr(layer)}")
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
        raise ConfigError(f"family is {short_repr(fam)} but {family!r} was expected")
    if not isinstance(fam, str) or fam not in CONFIG_TYPES:  # a list or object is not hashable
        raise ConfigError(f"family must be one of {list(CONFIG_TYPES)}, got {short_repr(fam)}")
    cls = CONFIG_TYPES[fam]
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted((k for k in data if k not in known), key=str)
    if unknown:
        raise ConfigError(f"unknown key {short_repr(unknown[0])} for family {fam!r}")
    if "n_layer" not in data:
        raise ConfigError("n_layer is required")
    vocab = data.get("vocab_size")
    if cls is DartsConfig:
        return cls(**data)
    if "cutoffs" not in data and isinstance(vocab, int) and not isinstance(vocab, bool):
        data["cutoffs"] = clip_cutoffs(cls().cutoffs, vocab)
    cutoffs = data.get("cutoffs")
    if "tie_projs" not in data and isinstance(cutoffs, (list, tuple)) and len(cutoffs) <= LIMITS["cutoffs"]:
        data["tie_projs"] = [False] + [True] * len(cutoffs)
    return cls(**data)


def parse_json(text: str, source: str, line_numbers: bool = True) -> Any:
    """``json.loads`` with every way it fails as a one-line ConfigError naming ``source``
    (``line_numbers=False`` where ``source`` names the line already)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        where = f" at line {exc.lineno}" if line_numbers else ""
        raise ConfigError(f"{source}: malformed JSON ({exc.msg}{where})") from None
    except RecursionError:
        raise ConfigError(f"{source}: malformed JSON (nested too deeply)") from None
    except ValueError:  # Python refuses integers of more than 4300 digits
        raise ConfigError(f"{source}: malformed JSON (a number of more than 4300 digits)") from None


def config_from_json(text: str, source: str = "config") -> Config:
    return config_from_dict(parse_json(text, source))
