"""Constants of the differentiable search that the CLI needs without torch (argparse defaults).

:mod:`lts.darts.supernet` imports torch (~1.5 s); ``lts --help`` registers ``lts darts`` with these.
"""

from __future__ import annotations

DEFAULT_OPS: tuple[str, ...] = (
    "attn2", "attn4", "attn8", "conv3", "conv5", "conv7", "conv11",
    "lightconv7", "dynconv7", "glu", "ffn", "identity", "zero",
)
