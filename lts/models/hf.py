"""lts architectures as Hugging Face models: native (every family) and stock GPT-2 (where it fits).

* :func:`hf_config` / :func:`lts_config` translate between an lts config and its ``transformers``
  twin (:mod:`lts.models.hf_configs`); :func:`hf_model` builds the ``transformers`` model, with the
  weights of an lts model when given (the same modules, so the logits are equal).
* :func:`save_folder` writes a folder ``AutoModelForCausalLM.from_pretrained`` loads: ``config.json``,
  ``generation_config.json``, ``model.safetensors`` (when there are weights), the model code for
  ``trust_remote_code`` (torch and transformers only), and a README.
* :func:`stock_gpt2` converts homogeneous GPT-2 shapes without adaptive clusters to
  ``transformers.GPT2LMHeadModel`` itself. GPT-2's ``lm_head`` has no bias: an output bias that is
  constant over the vocabulary (lts's init is zero) changes no probability and is dropped; any other
  bias cannot be carried, and the conversion refuses in one line.

``transformers`` is imported only inside these functions (2-6 s); asking whether a config converts
(:func:`why_not_stock_gpt2`) imports nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from lts.errors import LtsError
from lts.space.config import Config, GPT2Config
from lts.space.documents import config_from_hf_dict

if TYPE_CHECKING:  # torch costs 2 s to import: the dashboard asks why_not_stock_gpt2 without it
    import torch
    from torch import nn

GENERATION_DEFAULTS = {"do_sample": False}


def hf_config(config: Config, provenance: Mapping[str, Any] | None = None) -> Any:
    """The ``transformers`` config of ``config`` (``model_type`` ``lts_<family>``)."""
    from lts.models.hf_auto import register
    from lts.models.hf_configs import CONFIG_CLASSES

    register()
    fields = config.to_dict()
    family = fields.pop("family")
    cfg = CONFIG_CLASSES[family](**fields)
    cfg.lts = {"arch_id": config.arch_id, "family": family, **(provenance or {})}
    return cfg


def lts_config(hf: Any) -> Config:
    """The validated lts config of a ``transformers`` config (or its ``config.json`` as a dict)."""
    return config_from_hf_dict(dict(hf) if isinstance(hf, Mapping) else hf.to_dict())


def hf_model(config: Config, weights: nn.Module | Mapping[str, torch.Tensor] | None = None,
             provenance: Mapping[str, Any] | None = None) -> Any:
    """The ``transformers`` model of ``config``; with ``weights`` (an lts model or its state dict), those."""
    from lts.models.hf_modeling import MODEL_CLASSES

    model = MODEL_CLASSES[config.family](hf_config(config, provenance))
    if weights is not None:
        model.transformer.load_state_dict(_state(weights))
    return model.eval()


def _state(weights: nn.Module | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return weights.state_dict() if hasattr(weights, "state_dict") else dict(weights)  # type: ignore[union-attr]


def _generation_config(config: Config) -> Any:
    from transformers import GenerationConfig

    limit = {} if config.family == "transxl" else {"max_length": config.tgt_len}  # learned positions end there
    return GenerationConfig(**GENERATION_DEFAULTS, **limit,
                            use_cache=config.family != "darts")


def save_folder(config: Config, out_dir: str | Path, weights: nn.Module | Mapping[str, torch.Tensor] | None = None,
                provenance: Mapping[str, Any] | None = None, readme: str | None = None) -> list[Path]:
    """Write ``config`` (and ``weights``) as a Hugging Face folder; returns the files written."""
    from transformers.dynamic_module_utils import custom_object_save

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if weights is not None:
        model = hf_model(config, weights, provenance)
        model.generation_config = _generation_config(config)
        model.save_pretrained(out)
    else:
        # weights an earlier export left here would load in place of the fresh init
        for stale in [*out.glob("model*.safetensors"), *out.glob("model.safetensors.index.json")]:
            stale.unlink()
        # config only: the code and auto_map come from a model built on the meta device (no memory)
        from lts.models.hf_modeling import MODEL_CLASSES

        import torch

        cfg = hf_config(config, provenance)
        with torch.device("meta"):
            shell = MODEL_CLASSES[config.family](cfg)
        custom_object_save(shell, out, config=cfg)
        cfg.architectures = [type(shell).__name__]
        cfg.save_pretrained(out)
        _generation_config(config).save_pretrained(out)
    (out / "lts_architecture.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    if readme is not None:
        (out / "README.md").write_text(readme)
    return sorted(p for p in out.iterdir() if p.is_file())


# -- stock GPT-2 ------------------------------------------------------------------------------
def why_not_stock_gpt2(config: Config) -> str | None:
    """Why ``config`` has no ``transformers.GPT2LMHeadModel`` equivalent (None: it has); imports nothing."""
    if not isinstance(config, GPT2Config):
        return f"only gpt2 configs convert to transformers' GPT2LMHeadModel, not {config.family}"
    why = []
    if not config.is_homogeneous:
        why.append("layers differ in n_head or d_inner")
    if config.cutoffs:
        why.append("adaptive softmax cutoffs are set")
    if config.d_embed != config.d_model:
        why.append("d_embed differs from d_model")
    if not config.tie_weight:
        why.append("the output layer is not tied to the embedding")
    return "cannot convert to GPT2LMHeadModel: " + "; ".join(why) + " (save the lts_gpt2 model instead)" if why else None


def stock_gpt2_config(config: Config) -> Any:
    """A ``transformers.GPT2Config`` with the same decoder (and so the same LTS proxy) as ``config``."""
    why = why_not_stock_gpt2(config)
    if why:
        raise LtsError(why)
    from transformers import GPT2Config as HFGPT2Config

    assert isinstance(config, GPT2Config)
    return HFGPT2Config(
        vocab_size=config.vocab_size, n_positions=config.tgt_len, n_embd=config.d_model,
        n_layer=config.n_layer, n_head=config.n_head[0], n_inner=config.d_inner[0],
        activation_function="gelu_new", tie_word_embeddings=True,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=None, eos_token_id=None,
    )


def stock_gpt2(config: Config, weights: nn.Module | Mapping[str, torch.Tensor] | None = None) -> Any:
    """``transformers.GPT2LMHeadModel`` for ``config``, with the weights of an lts model when given.

    lts's ``nn.Linear`` layers are stored ``(out, in)``; GPT-2's ``Conv1D`` ``(in, out)``: transposed.
    """
    from transformers import GPT2LMHeadModel

    model = GPT2LMHeadModel(stock_gpt2_config(config))
    if weights is None:
        return model.eval()
    src = _state(weights)
    bias = src["crit.out_layers.0.bias"]
    spread = float(bias.max() - bias.min()) if bias.numel() else 0.0
    if spread > 1e-6 * max(1.0, float(bias.abs().max())):
        raise LtsError(f"cannot convert to GPT2LMHeadModel: the output bias varies over the vocabulary (by {spread:.3g}) "
                       "and GPT-2's lm_head has none; save the lts_gpt2 model instead")
    dst: dict[str, torch.Tensor] = {"transformer.wte.weight": src["wte.emb_layers.0.weight"],
                                    "transformer.wpe.weight": src["wpe.weight"],
                                    "transformer.ln_f.weight": src["ln_f.weight"], "transformer.ln_f.bias": src["ln_f.bias"]}
    for i in range(config.n_layer):
        a, b = f"layers.{i}.", f"transformer.h.{i}."
        for name in ("ln_1.weight", "ln_1.bias", "ln_2.weight", "ln_2.bias",
                     "attn.c_attn.bias", "attn.c_proj.bias", "mlp.c_fc.bias", "mlp.c_proj.bias"):
            dst[b + name] = src[a + name]
        for name in ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight"):
            dst[b + name] = src[a + name].t().contiguous()
    missing, unexpected = model.load_state_dict(dst, strict=False)
    left = [k for k in missing if not k.endswith(("attn.bias", "attn.masked_bias", "lm_head.weight"))]
    if left or unexpected:
        raise LtsError(f"GPT2LMHeadModel conversion left {left or unexpected} unmatched")
    model.tie_weights()
    return model.eval()


def save_stock_gpt2(config: Config, out_dir: str | Path, weights: nn.Module | Mapping[str, torch.Tensor] | None = None,
                    provenance: Mapping[str, Any] | None = None, readme: str | None = None) -> list[Path]:
    """Write ``config`` (and ``weights``) as a folder of transformers' own ``GPT2LMHeadModel``: loads
    with no lts and no remote code. Refused in one line where the shape has no GPT-2 equivalent."""
    out = Path(out_dir)
    gen = _generation_config(config)
    lts = {"arch_id": config.arch_id, "family": config.family, **(provenance or {})}
    if weights is not None:
        model = stock_gpt2(config, weights)  # a trained output bias usually varies: refused before any write
        model.config.lts = lts
        model.generation_config = gen
        out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(out)
    else:
        out.mkdir(parents=True, exist_ok=True)
        for stale in [*out.glob("model*.safetensors"), *out.glob("model.safetensors.index.json")]:
            stale.unlink()
        cfg = stock_gpt2_config(config)
        cfg.architectures = ["GPT2LMHeadModel"]
        cfg.lts = lts
        cfg.save_pretrained(out)
        gen.save_pretrained(out)
    (out / "lts_architecture.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    if readme is not None:
        (out / "README.md").write_text(readme)
    return sorted(p for p in out.iterdir() if p.is_file())


def stock_gpt2_config_dict(config: Config) -> dict[str, Any]:
    return stock_gpt2_config(config).to_dict()
