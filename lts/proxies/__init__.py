"""Proxies that score an architecture without training it.

The analytic counts (``decoder_params``, the LTS proxy; total parameters; FLOPs) live next to the
configs, in :mod:`lts.space.counts`; the registry exposes them as proxies like any other.

* :mod:`lts.proxies.registry` -- every proxy behind one interface (ZeroLM in
  :mod:`lts.proxies.zerolm`, the zero-cost proxies in :mod:`lts.proxies.zero_cost`).
* :mod:`lts.proxies.compare` -- how well each ranks trained models (``compare_reference``,
  ``compare_validation``); :mod:`lts.proxies.cli` -- ``lts proxies list|compare``.

The registry and comparison names below are loaded on first use, so that importing the package
does not import torch.
"""

from typing import Any

__all__ = ["PROXIES", "ProxySpec", "compare_reference", "compare_validation"]

_LAZY = {"PROXIES": "lts.proxies.registry", "ProxySpec": "lts.proxies.registry",
         "compare_reference": "lts.proxies.compare", "compare_validation": "lts.proxies.compare"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lts.proxies' has no attribute {name!r}")
