"""Proxies that score an architecture without training it."""

from lts.proxies.params import (
    breakdown,
    decoder_params,
    flops_per_token,
    forward_flops,
    proxy_values,
    total_params,
)

__all__ = ["breakdown", "decoder_params", "flops_per_token", "forward_flops", "proxy_values", "total_params"]
