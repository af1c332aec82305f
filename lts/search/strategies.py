"""Search strategies: they only propose configs; evaluating and storing them is the runner's job.

A :class:`Strategy` is asked for proposals (:meth:`Strategy.propose`), told each evaluated member
(:meth:`Strategy.tell`), and saves and restores its state (:meth:`Strategy.state`), so a run
resumed after ``kill -9`` continues on the path of an uninterrupted one. The runner picks one by
name from :data:`STRATEGIES`; a new strategy (a peer library's sampler) is a subclass registered
there.

* ``random``: uniform samples from the space (the baseline).
* ``evolution``: LTS's evolutionary multi-objective search in NSGA-II form. The first
  ``population`` proposals are random; afterwards parents are the best ``population`` members by
  (non-dominated rank, crowding distance) and each child is a crossover of two binary-tournament
  winners followed by mutation, or a mutation of one winner.
* ``optuna-nsga2``, ``optuna-tpe``, ``optuna-gp``: Optuna's samplers, the peers a user would try
  instead (:mod:`lts.search.optuna_samplers`, which documents how a config maps to their parameters).

Every random choice draws from the ``random.Random`` passed in, so a run is reproducible from its
seed and resumable from a saved generator state.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from lts.errors import LtsError
from lts.objectives import objective, objective_matrix
from lts.search import defaults
from lts.pareto import crowding, nd_ranks
from lts.space.config import LIMITS, Config, config_from_json, short_repr
from lts.space.ranges import SearchSpace

@dataclass(frozen=True)
class EvolutionSettings:
    population: int = defaults.POPULATION  # random initial members, then the size of the parent pool
    generation: int = defaults.GENERATION  # children proposed per generation
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
    """One proposal of the named strategy drawing from ``rng`` (see :meth:`Strategy.propose`)."""
    s = make_strategy(strategy, space, objectives, settings, 0)
    s.rng = rng
    return s.propose(members, params)


def _sample(space: SearchSpace, rng: random.Random, params: tuple[int | None, int | None]) -> Config:
    """A uniform sample; with ``params`` = (min, max) decoder parameters, built inside those bounds
    (so a bound near the space's edge does not reject nearly every proposal). Without bounds no
    extra random draw is made, so unconstrained runs follow the same path as before."""
    lo, hi = params
    if lo is not None or hi is not None:
        return space.sample_within(rng, lo, hi) or space.sample(rng)
    return space.sample(rng)


def _parents(members: Sequence[Mapping[str, Any]], objectives: Sequence[str], settings: EvolutionSettings) -> list[Config]:
    order = _fitness_order(members, objectives)[: settings.population]
    return [config_from_json(members[i]["config_json"]) for i in order]


def _child(space: SearchSpace, pool: Sequence[Config], rng: random.Random, settings: EvolutionSettings) -> Config:
    """A child of binary-tournament winners from ``pool`` (parents, best first)."""

    def tournament() -> Config:
        a, b = rng.randrange(len(pool)), rng.randrange(len(pool))
        return pool[min(a, b)]  # pool is sorted best first

    if rng.random() < settings.crossover_prob:
        child = space.crossover(tournament(), tournament(), rng)
        return space.mutate(child, rng, settings.mutation_prob)
    return space.mutate(tournament(), rng, settings.mutation_prob)


def rng_to_json(rng: random.Random) -> list:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def rng_from_json(data: list) -> random.Random:
    rng = random.Random()
    rng.setstate((data[0], tuple(data[1]), data[2]))
    return rng


class Strategy(ABC):
    """Proposes configs of ``space`` for a run; every random choice draws from ``self.rng`` (seeded)."""

    name: ClassVar[str]

    def __init__(self, space: SearchSpace, objectives: Sequence[str], settings: EvolutionSettings, seed: int) -> None:
        self.space, self.objectives, self.settings = space, tuple(objectives), settings
        self.rng = random.Random(seed)

    @abstractmethod
    def propose(self, members: Sequence[Mapping[str, Any]],
                params: tuple[int | None, int | None] = (None, None)) -> Config:
        """One proposal, given the run's evaluated members so far (``params``: decoder-parameter bounds)."""

    def tell(self, member: Mapping[str, Any]) -> None:
        """An evaluated member (the built-in strategies read the members list instead)."""

    def state(self) -> dict[str, Any]:
        """What resuming needs: the generator state, and the strategy's own (``extra``)."""
        out: dict[str, Any] = {"rng": rng_to_json(self.rng)}
        extra = self.extra_state()
        if extra:
            out["strategy"] = extra
        return out

    def restore(self, state: Mapping[str, Any]) -> None:
        if state.get("rng") is not None:
            self.rng = rng_from_json(state["rng"])
        self.restore_extra(state.get("strategy") or {})

    def extra_state(self) -> dict[str, Any]:
        return {}

    def restore_extra(self, extra: Mapping[str, Any]) -> None:
        pass


class RandomSearch(Strategy):
    """Uniform samples from the space (the baseline)."""

    name = "random"

    def propose(self, members: Sequence[Mapping[str, Any]],
                params: tuple[int | None, int | None] = (None, None)) -> Config:
        return _sample(self.space, self.rng, params)


class Evolution(Strategy):
    """LTS's evolutionary search in NSGA-II form (see the module docstring)."""

    name = "evolution"

    def __init__(self, space: SearchSpace, objectives: Sequence[str], settings: EvolutionSettings, seed: int) -> None:
        super().__init__(space, objectives, settings, seed)
        self._objs = [objective(n) for n in self.objectives]
        self._parents_for: tuple[tuple, list[Config]] | None = None

    def propose(self, members: Sequence[Mapping[str, Any]],
                params: tuple[int | None, int | None] = (None, None)) -> Config:
        """Random for the first ``population`` members; then a child of tournament winners, repaired
        into the decoder-parameter bounds (:meth:`SearchSpace.within`) when it falls outside."""
        if len(members) < self.settings.population:
            return _sample(self.space, self.rng, params)
        # a generation asks for many children of the same members (hundreds when a surrogate
        # screens them): sort them once, not per child; the key holds what the sort reads
        key = tuple((m["arch_id"], m["feasible"], *(m.get(o.column) for o in self._objs)) for m in members)
        if self._parents_for is None or self._parents_for[0] != key:
            self._parents_for = (key, _parents(members, self.objectives, self.settings))
        child = _child(self.space, self._parents_for[1], self.rng, self.settings)
        lo, hi = params
        if lo is None and hi is None:
            return child
        return self.space.within(child, self.rng, lo, hi) or child


# The peers live in their own module (it imports optuna only when one of them proposes); it needs
# Strategy, defined above, so it is imported here rather than at the top.
from lts.search.optuna_samplers import OPTUNA_STRATEGIES  # noqa: E402

STRATEGIES: dict[str, type[Strategy]] = {c.name: c for c in (Evolution, RandomSearch, *OPTUNA_STRATEGIES)}


def make_strategy(name: str, space: SearchSpace, objectives: Sequence[str], settings: EvolutionSettings,
                  seed: int) -> Strategy:
    if name not in STRATEGIES:
        raise LtsError(f"unknown strategy {name!r}; choose from {', '.join(STRATEGIES)}")
    return STRATEGIES[name](space, objectives, settings, seed)
