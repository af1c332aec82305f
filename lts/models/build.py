"""Model builders for lts's families: ``build_model(config)``; weights as bytes and back.

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


TILE = 65536  # values in the block init=False repeats (256 KiB of fp32: it stays in cache)


def init_weights(model: nn.Module, seed: int, tiled: bool = False) -> None:
    """lts's seeded init: normal(0, 0.02) weights, zero biases, unit LayerNorms.

    ``tiled``: each weight is one seeded block of :data:`TILE` normal(0, 0.02) values, repeated.
    """
    gen = torch.Generator(device="cpu").manual_seed(seed)
    block = torch.empty(TILE).normal_(0.0, 0.02, generator=gen) if tiled else None
    for name, p in model.named_parameters():  # shared (tied) parameters are visited once
        leaf = name.rsplit(".", 1)[-1]
        with torch.no_grad():
            if leaf == "bias" or leaf == "cluster_bias":
                p.zero_()
            elif ".layer_norm." in f".{name}" or ".ln_" in f".{name}":
                p.fill_(1.0)
            elif block is not None:
                flat, whole = p.view(-1), p.numel() // TILE * TILE
                flat[:whole].view(-1, TILE).copy_(block.to(p.device))
                flat[whole:].copy_(block[: p.numel() - whole].to(p.device))
            else:
                p.normal_(0.0, 0.02, generator=gen)


def build_model(
    config: Config,
    device: str | torch.device = "cpu",
    dropout: float = 0.0,
    seed: int = 0,
    init: bool = True,
) -> nn.Module:
    """Build the model for ``config``. ``device="meta"`` gives shapes only (instant, no memory).

    ``init=False`` fills the weights with one seeded normal(0, 0.02) block of ``TILE`` values
    repeated (biases zero, LayerNorms one, as the seeded init): every page is resident, every forward
    allocates exactly what it would with real weights (no shape here depends on a value) and runs on
    values of the same kind, at memory-copy speed instead of the generator's (the seeded init draws
    every value: 0.07-1.3 s for 9-41 M parameters here). The measuring workers build this way.
    """
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
    init_weights(model, seed, tiled=not init)
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


def state_bytes(model: nn.Module) -> bytes:
    """The model's weights as safetensors bytes, each shared (tied) tensor once, under its first name."""
    from safetensors.torch import save

    aliases = _aliases(model)
    return save({n: t.detach().cpu().contiguous() for n, t in model.state_dict().items() if n not in aliases})


def _aliases(model: nn.Module) -> set[str]:
    """Names in the state dict whose tensor an earlier name already holds (tied weights)."""
    seen: set[int] = set()
    out = set()
    for name, t in model.state_dict().items():
        if t.data_ptr() in seen:
            out.add(name)
        seen.add(t.data_ptr())
    return out


def model_from_bytes(config: Config, data: bytes) -> nn.Module:
    """The model of ``config`` with the weights :func:`state_bytes` wrote (the ties restored)."""
    from safetensors.torch import load

    model = build_model(config)
    missing, unexpected = model.load_state_dict(load(data), strict=False)
    if unexpected or set(missing) - _aliases(model):
        raise ValueError(f"the weights do not fit architecture {config.arch_id} "
                         f"(missing {sorted(missing)[:2]}, unexpected {sorted(unexpected)[:2]})")
    model.tie_weights()  # type: ignore[operator]
    return model.eval()
