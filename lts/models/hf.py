"""Export homogeneous GPT-2 configs to ``transformers`` so a found model trains with its tools."""

from __future__ import annotations

from typing import Any

from lts.errors import LtsError
from lts.space.config import Config, GPT2Config


def to_hf_config(config: Config) -> Any:
    """A ``transformers.GPT2Config`` with the same decoder as ``config``.

    Only plain GPT-2 shapes translate: equal heads and FFN widths in every layer, no adaptive
    clusters, ``d_embed == d_model``. The decoder (and so the LTS proxy) is then identical; the
    total differs by the output bias of our adaptive softmax (``vocab_size`` parameters), which
    GPT-2's tied ``lm_head`` does not have.
    """
    why = why_not_exportable(config)
    if why:
        raise LtsError(why)
    from transformers import GPT2Config as HFGPT2Config  # 2-3 s cold: only once the shape translates

    return HFGPT2Config(
        vocab_size=config.vocab_size,
        n_positions=config.tgt_len,
        n_embd=config.d_model,
        n_layer=config.n_layer,
        n_head=config.n_head[0],
        n_inner=config.d_inner[0],
        activation_function="gelu_new",
        tie_word_embeddings=config.tie_weight,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )


def why_not_exportable(config: Config) -> str | None:
    """Why ``config`` has no ``transformers.GPT2Config`` equivalent (None: it has), without importing transformers."""
    if not isinstance(config, GPT2Config):
        return f"only gpt2 configs export to transformers, not {config.family}"
    why = []
    if not config.is_homogeneous:
        why.append("layers differ in n_head or d_inner")
    if config.cutoffs:
        why.append("adaptive softmax cutoffs are set")
    if config.d_embed != config.d_model:
        why.append("d_embed differs from d_model")
    return "cannot export to transformers.GPT2Config: " + "; ".join(why) if why else None


def build_hf_model(config: Config) -> Any:
    from transformers import GPT2LMHeadModel

    return GPT2LMHeadModel(to_hf_config(config))


def hf_config_dict(config: Config) -> dict[str, Any]:
    return to_hf_config(config).to_dict()
