"""Defaults and policies of a new validation run that ``lts validate`` and the dashboard's form share.

Plain Python (no torch, no numpy): ``lts --help`` reads them.
"""

from __future__ import annotations

N_ARCHS = 12  # architectures sampled from the validation space (a search run's frontier: all of it)
WORKERS = 2  # parallel worker processes, one torch thread each


def default_warmup(steps: int) -> int:
    """Warm-up steps when none are given: 10% of the training steps, at least one."""
    return max(1, round(0.1 * steps))
