"""lts's models: the PyTorch model of every family (:mod:`lts.models.build`), their Hugging Face twins
(:mod:`lts.models.hf`).

The names below load on first use: importing ``lts.models.hf`` (or anything else here) must not
import torch, which costs 2 s, where only a config question is asked (the dashboard's pages).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lts.models.build import build_model, count_parameters, init_weights, model_from_bytes, state_bytes
    from lts.models.darts import DartsLM
    from lts.models.gpt2 import GPT2Flex
    from lts.models.transxl import MemTransformerLM

_WHERE = {"build_model": "build", "count_parameters": "build", "init_weights": "build",
          "model_from_bytes": "build", "state_bytes": "build",
          "DartsLM": "darts", "GPT2Flex": "gpt2", "MemTransformerLM": "transxl"}
__all__ = ["DartsLM", "GPT2Flex", "MemTransformerLM", "build_model", "count_parameters", "init_weights",
           "model_from_bytes", "state_bytes"]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'lts.models' has no attribute {name!r}")
    return getattr(importlib.import_module(f"lts.models.{_WHERE[name]}"), name)
