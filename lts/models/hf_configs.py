"""``transformers`` configs of lts's three families: ``lts_gpt2``, ``lts_transxl``, ``lts_darts``.

Each holds exactly the fields of its ``lts.space.config`` twin (same names, same meaning, so an
architecture's JSON and its ``config.json`` read alike), plus what ``transformers`` expects of a
causal LM config (dropout, init range, ``use_cache``, ``tie_word_embeddings``) and ``lts``: the
provenance lts writes (architecture id, device, run, measurement, proxies), free-form.

Like every file a saved folder carries, this one imports only ``transformers`` and the standard
library: with ``trust_remote_code=True`` the folder loads where lts is not installed. Values are
not validated here; :func:`lts.models.hf.lts_config` turns one into a validated lts config.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any

from transformers import PreTrainedConfig


class _LtsConfig(PreTrainedConfig):
    """What every lts family's ``transformers`` config has."""

    vocab_size: int = 50264
    tgt_len: int = 192
    dropout: float = 0.0
    initializer_range: float = 0.02
    use_cache: bool = True
    # transformers only ties the weights named by a model's _tied_weights_keys when this is True;
    # lts's models name the pairs their tie_weight / tie_projs settings share (possibly none)
    tie_word_embeddings: bool = True
    lts: dict[str, Any] | None = None


class _AdaptiveConfig(_LtsConfig):
    """The fields both adaptive-softmax families share (GPT-2's defaults; Transformer-XL overrides some)."""

    n_layer: int = 4
    d_model: int = 256
    d_embed: int = 256
    div_val: int = 1
    n_head: list[int] = field(default_factory=lambda: [4] * 4)
    d_inner: list[int] = field(default_factory=lambda: [1024] * 4)
    cutoffs: list[int] = field(default_factory=lambda: [19997, 39997])
    tie_weight: bool = True
    tie_projs: list[bool] = field(default_factory=lambda: [False, True, True])


class LtsGPT2Config(_AdaptiveConfig):
    """GPT-2 with per-layer heads and FFN widths and a projected adaptive embedding / softmax."""

    model_type = "lts_gpt2"
    attribute_map = {"hidden_size": "d_model", "num_hidden_layers": "n_layer",
                     "max_position_embeddings": "tgt_len"}


class LtsTransXLConfig(_AdaptiveConfig):
    """Transformer-XL with relative attention, a recurrence memory of ``mem_len`` and per-layer widths."""

    model_type = "lts_transxl"
    attribute_map = {"hidden_size": "d_model", "num_hidden_layers": "n_layer"}

    vocab_size: int = 267736
    cutoffs: list[int] = field(default_factory=lambda: [19997, 39997, 199997])
    tie_projs: list[bool] = field(default_factory=lambda: [False, True, True, True])
    mem_len: int = 192
    d_head: int = -1


class LtsDartsConfig(_LtsConfig):
    """An architecture of lts's differentiable search: reversible multi-split layers, one operation each."""

    model_type = "lts_darts"
    attribute_map = {"hidden_size": "d_model", "num_hidden_layers": "n_layer",
                     "max_position_embeddings": "tgt_len"}

    n_layer: int = 2
    d_model: int = 256
    n_split: int = 2
    ops: list[list[str]] = field(default_factory=lambda: [["attn4", "ffn"], ["conv5", "ffn"]])
    vocab_size: int = 2048
    ffn_mult: int = 4
    conv_heads: int = 4
    use_cache: bool = False  # no cache: its convolutions would need their own state


CONFIG_CLASSES: dict[str, type[_LtsConfig]] = {
    "gpt2": LtsGPT2Config, "transxl": LtsTransXLConfig, "darts": LtsDartsConfig,
}

for _cls in CONFIG_CLASSES.values():
    _cls.register_for_auto_class()  # save_pretrained writes auto_map and copies this file
