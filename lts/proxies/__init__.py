"""Proxies that score an architecture without training it.

* :mod:`lts.proxies.params` -- the analytic counts (``decoder_params``, the LTS proxy; total
  parameters; FLOPs). Imported eagerly: the search's hot path uses them and needs no torch.
* :mod:`lts.proxies.registry` -- every proxy behind one interface (ZeroLM in
  :mod:`lts.proxies.zerolm`, the zero-cost proxies in :mod:`lts.proxies.zero_cost`).
* :mod:`lts.proxies.compare` -- how well each ranks trained models (``compare_reference``,
  ``compare_validation``); :mod:`lts.proxies.cli` -- ``lts proxies list|compare``.

The registry and comparison names below are loaded on first use, so that importing the analytic
counts does not import torch.
"""

from typing import Any

from lts.proxies.params import (
    breakdown,
    decoder_params,
    flops_per_token,
    forward_flops,
    proxy_values,
    total_params,
)

__all__ = ["breakdown", "decoder_params", "flops_per_token", "forward_flops", "proxy_values", "total_params"]

_LAZY = {"PROXIES": "lts.proxies.registry", "ProxySpec": "lts.proxies.registry",
         "compare_reference": "lts.proxies.compare", "compare_validation": "lts.proxies.compare"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lts.proxies' has no attribute {name!r}")
