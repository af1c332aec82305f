"""Model builders for both LTS families: ``build_model(config)``.

Models are built on the ``meta`` device first (no memory, no init cost), then materialised with
``to_empty`` and a cheap, seeded GPT-2-style init: normal(0, 0.02) weights, zero biases, unit
LayerNorms. Materialising breaks parameter sharing, so weights are re-tied afterwards; counting a
model that skipped ``tie_weights`` is the classic way to get LTS's counts wrong.
"""

from __future__ import annotations

import torch
from torch import nn

from lts.models.darts import DartsLM
from lts.models.gpt2 import GPT2Flex
from lts.models.transxl import MemTransformerLM
from lts.space.config import Config, DartsConfig, GPT2Config, TransXLConfig

__all__ = ["DartsLM", "GPT2Flex", "MemTransformerLM", "build_model", "count_parameters", "init_weights"]


def init_weights(model: nn.Module, seed: int) -> None:
    """lts's seeded init: normal(0, 0.02) weights, zero biases, unit LayerNorms."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    for name, p in model.named_parameters():  # shared (tied) parameters are visited once
        leaf = name.rsplit(".", 1)[-1]
        with torch.no_grad():
            if leaf == "bias" or leaf == "cluster_bias":
                p.zero_()
            elif ".layer_norm." in f".{name}" or ".ln_" in f".{name}":
                p.fill_(1.0)
            else:
                p.normal_(0.0, 0.02, generator=gen)


def build_model(
    config: Config,
    device: str | torch.device = "cpu",
    dropout: float = 0.0,
    seed: int = 0,
) -> nn.Module:
    """Build the model for ``config``. ``device="meta"`` gives shapes only (instant, no memory)."""
    classes = {GPT2Config: GPT2Flex, TransXLConfig: MemTransformerLM, DartsConfig: DartsLM}
    cls = classes.get(type(config))
    if cls is None:
        raise TypeError(f"not an lts config: {type(config).__name__}")
    with torch.device("meta"):
        model = cls(config, dropout=dropout)
    if str(device) == "meta":
        return model
    model.to_empty(device=device)
    model.tie_weights()
    if isinstance(model, MemTransformerLM):  # buffers are not parameters: recompute after to_empty
        d = config.d_model
        model.inv_freq = 1.0 / (10000 ** (torch.arange(0.0, d, 2.0, device=device) / d))
    init_weights(model, seed)
    return model


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Parameter counts of a built model, each shared tensor counted once."""

    def unique(modules: list[nn.Module]) -> int:
        seen: dict[int, int] = {}
        for m in modules:
            for p in m.parameters():
                seen[id(p)] = p.numel()
        return sum(seen.values())

    decoder = unique(model.decoder_modules())  # type: ignore[operator]
    return {"decoder_params": decoder, "total_params": unique([model])}
