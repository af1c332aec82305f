import numpy as np
import pytest

from lts.pareto import hypervolume, nd_ranks, pareto_mask


def brute_force_front(F):
    n = len(F)
    keep = np.ones(n, dtype=bool)
    for i in range(n):
        for j in range(n):
            if np.all(F[j] <= F[i]) and np.any(F[j] < F[i]):
                keep[i] = False
                break
    return keep


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("dims", [2, 3])
def test_front_equals_brute_force(seed, dims):
    rng = np.random.default_rng(seed)
    # integers produce ties and duplicates, the cases that break hand-written fronts
    F = rng.integers(0, 8, size=(int(rng.integers(1, 120)), dims)).astype(float)
    assert np.array_equal(pareto_mask(F), brute_force_front(F))
    front = F[pareto_mask(F)]
    assert np.array_equal(brute_force_front(front), np.ones(len(front), dtype=bool))


def test_ranks_peel_fronts():
    F = np.array([[0, 0], [1, 1], [2, 2], [0, 3]], dtype=float)
    assert list(nd_ranks(F)) == [0, 1, 2, 1]


def test_hypervolume_of_known_sets():
    assert hypervolume([[0.5, 0.5]], [1, 1]) == pytest.approx(0.25)
    assert hypervolume([[0.0, 0.5], [0.5, 0.0]], [1, 1]) == pytest.approx(0.75)
    assert hypervolume([[2.0, 0.0]], [1, 1]) == 0.0  # beyond the reference adds nothing
    assert hypervolume(np.empty((0, 2)), [1, 1]) == 0.0
