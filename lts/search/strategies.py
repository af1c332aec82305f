"""Search strategies: they only propose configs; evaluating and storing them is the runner's job.

* ``random``: uniform samples from the space (the baseline).
* ``evolution``: LTS's evolutionary multi-objective search in NSGA-II form. The first
  ``population`` proposals are random; afterwards parents are the best ``population`` members by
  (non-dominated rank, crowding distance) and each child is a crossover of two binary-tournament
  winners followed by mutation, or a mutation of one winner.

Every random choice draws from the ``random.Random`` passed in, so a run is reproducible from its
seed and resumable from a saved generator state.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from lts.errors import LtsError
from lts.search.objectives import objective_matrix
from lts.search.pareto import crowding, nd_ranks
from lts.space.config import LIMITS, Config, config_from_json, short_repr
from lts.space.ranges import SearchSpace

STRATEGIES = ("evolution", "random")


@dataclass(frozen=True)
class EvolutionSettings:
    population: int = 20  # random initial members, then the size of the parent pool
    generation: int = 10  # children proposed per generation
    crossover_prob: float = 0.5
    mutation_prob: float = 0.3

    def __post_init__(self) -> None:
        # generation < 1 proposed nothing per generation, so a run never ended; the upper limits
        # bound the proposals one generation holds in memory and in the run's saved state
        for k in ("population", "generation"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= LIMITS[k]:
                raise LtsError(f"evolution {k} must be an integer in 1..{LIMITS[k]:,}, got {short_repr(v)}")
        for k in ("crossover_prob", "mutation_prob"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
                raise LtsError(f"evolution {k} must lie in [0, 1], got {short_repr(v)}")


def _fitness_order(members: Sequence[Mapping[str, Any]], objectives: Sequence[str]) -> list[int]:
    """Indices of ``members`` best first: feasible by (rank, -crowding), then infeasible ones."""
    feasible = [i for i, m in enumerate(members) if m["feasible"]]
    rest = [i for i, m in enumerate(members) if not m["feasible"]]
    if not feasible:
        return rest
    F = objective_matrix([members[i] for i in feasible], objectives)
    ranks = nd_ranks(F)
    crowd = np.zeros(len(feasible))
    for r in np.unique(ranks):
        idx = np.flatnonzero(ranks == r)
        crowd[idx] = crowding(F[idx])
    order = sorted(range(len(feasible)), key=lambda k: (ranks[k], -crowd[k], members[feasible[k]]["eval_index"]))
    return [feasible[k] for k in order] + rest


def propose(
    strategy: str,
    space: SearchSpace,
    members: Sequence[Mapping[str, Any]],
    objectives: Sequence[str],
    rng: random.Random,
    settings: EvolutionSettings = EvolutionSettings(),
    params: tuple[int | None, int | None] = (None, None),
) -> Config:
    """One proposal. ``members`` are this run's evaluated rows (config_json, feasible, objective columns).

    ``params`` = (min, max) decoder parameters: random proposals are built inside these bounds and
    children outside them are repaired (:meth:`SearchSpace.within`), so that a bound near the
    space's edge does not reject nearly every proposal. Without bounds no extra random draw is
    made, so unconstrained runs follow the same path as before.
    """
    lo, hi = params
    bounded = lo is not None or hi is not None
    if strategy == "random" or len(members) < settings.population:
        if bounded:
            return space.sample_within(rng, lo, hi) or space.sample(rng)
        return space.sample(rng)
    child = _child(space, members, objectives, rng, settings)
    return (space.within(child, rng, lo, hi) or child) if bounded else child


def _child(space: SearchSpace, members: Sequence[Mapping[str, Any]], objectives: Sequence[str],
           rng: random.Random, settings: EvolutionSettings) -> Config:
    order = _fitness_order(members, objectives)[: settings.population]
    pool = [config_from_json(members[i]["config_json"]) for i in order]

    def tournament() -> Config:
        a, b = rng.randrange(len(pool)), rng.randrange(len(pool))
        return pool[min(a, b)]  # pool is sorted best first

    if rng.random() < settings.crossover_prob:
        child = space.crossover(tournament(), tournament(), rng)
        return space.mutate(child, rng, settings.mutation_prob)
    return space.mutate(tournament(), rng, settings.mutation_prob)
