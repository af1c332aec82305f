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

from lts.search.objectives import objective_matrix
from lts.search.pareto import crowding, nd_ranks
from lts.space.config import Config, config_from_json
from lts.space.ranges import SearchSpace

STRATEGIES = ("evolution", "random")


@dataclass(frozen=True)
class EvolutionSettings:
    population: int = 20  # random initial members, then the size of the parent pool
    generation: int = 10  # children proposed per generation
    crossover_prob: float = 0.5
    mutation_prob: float = 0.3


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
) -> Config:
    """One proposal. ``members`` are this run's evaluated rows (config_json, feasible, objective columns)."""
    if strategy == "random" or len(members) < settings.population:
        return space.sample(rng)
    order = _fitness_order(members, objectives)[: settings.population]
    pool = [config_from_json(members[i]["config_json"]) for i in order]

    def tournament() -> Config:
        a, b = rng.randrange(len(pool)), rng.randrange(len(pool))
        return pool[min(a, b)]  # pool is sorted best first

    if rng.random() < settings.crossover_prob:
        child = space.crossover(tournament(), tournament(), rng)
        return space.mutate(child, rng, settings.mutation_prob)
    return space.mutate(tournament(), rng, settings.mutation_prob)
