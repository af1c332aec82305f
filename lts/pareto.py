"""Pareto fronts and hypervolume, all in minimisation form.

Non-dominated sorting and hypervolume come from pymoo (``NonDominatedSorting``, ``HV``): a
maintained, tested implementation (efficient non-dominated sort, exact hypervolume in any number
of objectives), where a hand-written version would be the place bugs hide. Tests check the front
against a brute-force O(n^2) definition.
"""

from __future__ import annotations

import numpy as np

# pymoo is imported in the functions: it pulls scipy (~0.3 s), and light commands (``lts runs``,
# ``lts frontier``) reach this module through lts.search.runner without computing a front.


def _as_matrix(F: np.ndarray | list) -> np.ndarray:
    F = np.asarray(F, dtype=float)
    return F.reshape(len(F), -1) if F.size else np.empty((0, 1))


def pareto_mask(F: np.ndarray | list) -> np.ndarray:
    """True for the rows of ``F`` that no other row dominates (duplicates of a front point stay)."""
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

    F = _as_matrix(F)
    mask = np.zeros(len(F), dtype=bool)
    if len(F):
        mask[NonDominatedSorting().do(F, only_non_dominated_front=True)] = True
    return mask


def nd_ranks(F: np.ndarray | list) -> np.ndarray:
    """Front index of each row (0 = the Pareto front)."""
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

    F = _as_matrix(F)
    ranks = np.zeros(len(F), dtype=int)
    for i, front in enumerate(NonDominatedSorting().do(F) if len(F) else []):
        ranks[front] = i
    return ranks


def crowding(F: np.ndarray | list) -> np.ndarray:
    from pymoo.operators.survival.rank_and_crowding.metrics import calc_crowding_distance

    F = _as_matrix(F)
    if len(F) <= 2:
        return np.full(len(F), np.inf)
    return calc_crowding_distance(F)


def hypervolume(F: np.ndarray | list, ref: np.ndarray | list) -> float:
    """Volume dominated by the rows of ``F`` inside the box bounded by ``ref`` (rows beyond it add 0)."""
    from pymoo.indicators.hv import HV

    F = _as_matrix(F)
    ref = np.asarray(ref, dtype=float)
    if not len(F):
        return 0.0
    inside = F[np.all(F < ref, axis=1)]
    return float(HV(ref_point=ref)(inside)) if len(inside) else 0.0
