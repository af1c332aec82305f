"""Dynamic int8 quantization of a built model's decoder, for measuring what an int8 deployment costs.

``quantize_int8(model)`` replaces, in place, every ``nn.Linear`` of the decoder (``decoder_modules()``)
with PyTorch's dynamically quantized one: int8 weights, activations quantized per call, int8 GEMMs
(FBGEMM on x86). The embedding and the adaptive softmax stay fp32, which is what dynamic
quantization of language models usually leaves alone (their rows are gathered or feed a
log-softmax). A layer whose weight is read directly rather than called (Transformer-XL's fused
``qkv_net``: queries from the segment, keys and values from memory + segment) is left in fp32:
such models name them in ``RAW_WEIGHT_LINEARS``.

Accuracy is not measured here: the outputs of an untrained model say nothing about a trained one's
perplexity after quantization, which a validation run of the quantized model would have to show.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn


def quantize_int8(model: nn.Module) -> nn.Module:
    """Quantize the decoder's ``nn.Linear`` layers to dynamic int8 in place; returns ``model``."""
    skip = tuple(getattr(model, "RAW_WEIGHT_LINEARS", ()))
    for part in model.decoder_modules():  # type: ignore[operator]
        names = {name for name, m in part.named_modules()
                 if isinstance(m, nn.Linear) and not name.rsplit(".", 1)[-1] in skip}
        if not names:
            continue
        with warnings.catch_warnings():  # torch.ao.quantization's deprecation notice, once per model
            warnings.simplefilter("ignore")
            torch.ao.quantization.quantize_dynamic(part, {n: torch.ao.quantization.default_dynamic_qconfig
                                                          for n in names}, dtype=torch.qint8, inplace=True)
    return model
