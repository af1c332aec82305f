"""Defaults and policies of a new validation run that ``lts validate`` and the dashboard's form share.

Plain Python (no torch, no numpy): ``lts --help`` reads them.
"""

from __future__ import annotations

# architectures sampled from the validation space (a search run's frontier: all of it): 16 spread
# over decoder parameters and over (depth, width) cells, so that depth and width both vary
N_ARCHS = 16
DEFAULT_SAMPLING = "cells"
WORKERS = 2  # parallel worker processes, one torch thread each


def default_warmup(steps: int) -> int:
    """Warm-up steps when none are given: 10% of the training steps, at least one."""
    return max(1, round(0.1 * steps))
