"""Optuna's multi-objective samplers as lts strategies: the peers a user would try instead of ours.

``optuna-nsga2`` (NSGAIISampler), ``optuna-tpe`` (TPESampler) and ``optuna-gp`` (GPSampler) run
behind :class:`lts.search.strategies.Strategy` through Optuna's ask/tell interface, so the runner
evaluates, stores and resumes them exactly like ``evolution``. Optuna is imported only when one of
them proposes (``lts --help`` and the dashboard never load it).

How a config maps to a sampler's parameters. Optuna's samplers model a static space best (GPSampler
and multivariate TPE use only the parameters every trial has), so the encoding has a fixed length
whatever ``n_layer`` is:

* ``n_layer``, ``d_model``, ``d_embed``, ``div_val``: one integer parameter each;
* ``n_head_i`` and ``d_inner_i`` for every layer ``i`` up to the space's largest ``n_layer``; the
  genes of layers ``i >= n_layer`` are inactive (sampled, kept in the trial, ignored by the config).

A field given as a range (``{"min", "max", "step"}``) is ``IntDistribution(min, max, step)``; a field
given as a list is the index into the sorted list, ``IntDistribution(0, len - 1)``, so the samplers
see its order (64 < 128 < 256) rather than unordered categories. A head count that does not divide
``d_model`` becomes the nearest one that does, a ``div_val`` that empties an adaptive cluster the
nearest valid one, and with decoder-parameter bounds the config is moved inside them
(:meth:`SearchSpace.within`). The trial then records the parameters of the config actually
evaluated, so every sampler learns from exact (parameters, objectives) pairs.

Objectives are told in minimisation form (maximised ones negated). A member without a value for
some objective (refused by a memory limit, a failed proxy) is a FAIL trial; a member with values
that breaks a constraint gets the constraint ``lts_infeasible`` = 1 (0 for the others) once the run
has one such member, which Optuna's samplers read through ``Trial.set_constraint``'s attribute.

Durability. The study lives in memory and is rebuilt, at each proposal, from the strategy's state:
one compact record per trial (its parameters, the arch_id of its config, how many members the run
had when it was asked, and its system attributes, e.g. NSGA-II's generation) plus the study's
system attributes (NSGA-II's parent cache). A trial's state and values follow from the run's
members, so a run resumed after ``kill -9`` sees the study an uninterrupted one saw. Each ask gets
a fresh sampler seeded from the strategy's generator, which the runner saves with the rest.
"""

from __future__ import annotations

import json
import warnings
from abc import abstractmethod
from typing import Any, ClassVar, Mapping, Sequence

from lts.errors import LtsError
from lts.objectives import objective
from lts.search.strategies import Strategy
from lts.space.config import Config
from lts.space.ranges import Dim

_CONSTRAINT = "lts_infeasible"
_CONSTRAINT_ATTR = f"constraints:{_CONSTRAINT}"  # where Trial.set_constraint keeps it (optuna >= 5)
GLOBAL_GENES = ("n_layer", "d_model", "d_embed", "div_val")


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise LtsError("the optuna-* strategies need optuna: pip install 'optuna>=5' (or lts[peers])") from None

    # Optuna logs every trial at INFO; lts reports progress itself.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _nearest(choices: Sequence[int], v: int) -> int:
    return min(choices, key=lambda c: (abs(c - v), c))


class OptunaStrategy(Strategy):
    """A peer strategy: one of Optuna's samplers proposing through ask/tell (see the module docstring)."""

    name: ClassVar[str]
    sampler_name: ClassVar[str]

    def __init__(self, space: Any, objectives: Sequence[str], settings: Any, seed: int) -> None:
        super().__init__(space, objectives, settings, seed)
        n_max = space.dims["n_layer"].max
        self.genes: tuple[str, ...] = GLOBAL_GENES + tuple(
            f"{g}_{i}" for i in range(n_max) for g in ("n_head", "d_inner"))
        self._trials: list[list[Any]] = []  # [params, arch_id, members when asked, system attrs]
        self._study_attrs: dict[str, Any] = {}

    # -- the sampler ------------------------------------------------------------------------
    @abstractmethod
    def make_sampler(self, optuna: Any, seed: int) -> Any:
        """The Optuna sampler of this strategy, seeded (a fresh one per ask)."""

    # -- encoding ---------------------------------------------------------------------------
    def _dim(self, gene: str) -> Dim:
        return self.space.dims[gene.rsplit("_", 1)[0] if gene not in GLOBAL_GENES else gene]

    def distributions(self) -> dict[str, Any]:
        from optuna.distributions import IntDistribution

        out = {}
        for g in self.genes:
            d = self._dim(g)
            out[g] = IntDistribution(d.lo, d.max, step=d.step) if d.is_range else IntDistribution(0, len(d) - 1)
        return out

    def _value(self, gene: str, p: int) -> int:
        d = self._dim(gene)
        return p if d.is_range else d.values[p]

    def _param(self, gene: str, v: int) -> int:
        d = self._dim(gene)
        return v if d.is_range else d.values.index(v)

    def decode(self, params: Sequence[int]) -> Config:
        """The config of a trial's parameters (inactive layer genes ignored, heads and div_val repaired)."""
        p = dict(zip(self.genes, params))
        v = {g: self._value(g, p[g]) for g in GLOBAL_GENES}
        heads = self.space._heads_for(v["d_model"])
        div_vals = self.space._div_vals_for(v["d_embed"])
        n = v["n_layer"]
        return self.space.make(
            n_layer=n, d_model=v["d_model"], d_embed=v["d_embed"], div_val=_nearest(div_vals, v["div_val"]),
            n_head=[_nearest(heads, self._value(f"n_head_{i}", p[f"n_head_{i}"])) for i in range(n)],
            d_inner=[self._value(f"d_inner_{i}", p[f"d_inner_{i}"]) for i in range(n)])

    def encode(self, cfg: Config, base: Sequence[int]) -> list[int]:
        """Parameters of ``cfg``; the inactive layer genes are taken from ``base``."""
        p = dict(zip(self.genes, base))
        for g in GLOBAL_GENES:
            p[g] = self._param(g, getattr(cfg, g))
        for i in range(cfg.n_layer):
            p[f"n_head_{i}"] = self._param(f"n_head_{i}", cfg.n_head[i])
            p[f"d_inner_{i}"] = self._param(f"d_inner_{i}", cfg.d_inner[i])
        return [int(p[g]) for g in self.genes]

    # -- the study, rebuilt from the state and the members ------------------------------------
    def _values(self, member: Mapping[str, Any]) -> list[float] | None:
        out = []
        for name in self.objectives:
            o = objective(name)
            v = member.get(o.column)
            if v is None:
                return None
            out.append(o.sign * float(v))
        return out

    def study(self, members: Sequence[Mapping[str, Any]]) -> Any:
        """An in-memory study holding every trial so far, in the order they were asked."""
        optuna = _optuna()
        from optuna.trial import TrialState, create_trial

        study = optuna.create_study(directions=["minimize"] * len(self.objectives),
                                    sampler=optuna.samplers.RandomSampler(seed=0))  # replaced before asking
        by_id: dict[str, Mapping[str, Any]] = {}
        for m in members:
            by_id.setdefault(m["arch_id"], m)
        values = {a: self._values(m) for a, m in by_id.items()}
        constrained = any(not m["feasible"] and values[a] is not None for a, m in by_id.items())
        dists = self.distributions()
        trials = []
        for params, arch_id, asked_at, attrs in self._trials:
            m, vals, attrs = by_id.get(arch_id), values.get(arch_id), dict(attrs)
            if vals is not None:
                state = TrialState.COMPLETE
                if constrained:
                    attrs[_CONSTRAINT_ATTR] = 0.0 if m["feasible"] else 1.0  # type: ignore[index]
            elif m is None and asked_at == len(members):
                state = TrialState.RUNNING  # proposed in this generation, not evaluated yet
            else:
                state = TrialState.FAIL  # evaluated without values, or proposed and never evaluated
            trials.append(create_trial(state=state, params=dict(zip(self.genes, params)), distributions=dists,
                                       values=vals, system_attrs=attrs))
        study.add_trials(trials)
        for k, v in self._study_attrs.items():
            study._storage.set_study_system_attr(study._study_id, k, v)
        return study

    def propose(self, members: Sequence[Mapping[str, Any]],
                params: tuple[int | None, int | None] = (None, None)) -> Config:
        optuna = _optuna()
        study = self.study(members)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=optuna.exceptions.ExperimentalWarning)
            study.sampler = self.make_sampler(optuna, self.rng.randrange(2**32))
            trial = study.ask(self.distributions())
        asked = [int(trial.params[g]) for g in self.genes]
        cfg = self.decode(asked)
        lo, hi = params
        if lo is not None or hi is not None:
            cfg = self.space.within(cfg, self.rng, lo, hi) or cfg
        # JSON round trip now, so that the attributes an uninterrupted run uses are those a resumed one reloads
        attrs = json.loads(json.dumps(study._storage.get_trial_system_attrs(trial._trial_id)))
        self._trials.append([self.encode(cfg, asked), cfg.arch_id, len(members), attrs])
        self._study_attrs = json.loads(json.dumps(study._storage.get_study_system_attrs(study._study_id)))
        return cfg

    # -- state --------------------------------------------------------------------------------
    def extra_state(self) -> dict[str, Any]:
        return {"trials": self._trials, "study_attrs": self._study_attrs}

    def restore_extra(self, extra: Mapping[str, Any]) -> None:
        self._trials = [list(t) for t in extra.get("trials", [])]
        self._study_attrs = dict(extra.get("study_attrs", {}))


class OptunaNSGA2(OptunaStrategy):
    """Optuna's NSGA-II; its population is the run's ``population`` (20 unless told)."""

    name = "optuna-nsga2"

    def make_sampler(self, optuna: Any, seed: int) -> Any:
        return optuna.samplers.NSGAIISampler(population_size=self.settings.population, seed=seed)


class OptunaTPE(OptunaStrategy):
    """Optuna's multi-objective TPE: ``population`` random trials first; the constant liar because a
    generation's proposals are asked before any of them is told."""

    name = "optuna-tpe"

    def make_sampler(self, optuna: Any, seed: int) -> Any:
        return optuna.samplers.TPESampler(n_startup_trials=self.settings.population, constant_liar=True, seed=seed)


class OptunaGP(OptunaStrategy):
    """Optuna's Gaussian-process sampler (multi-objective: log expected hypervolume improvement);
    ``population`` random trials first. Its cost per ask grows with the trials (a GP fit each time)."""

    name = "optuna-gp"

    def make_sampler(self, optuna: Any, seed: int) -> Any:
        return optuna.samplers.GPSampler(n_startup_trials=self.settings.population, seed=seed)


OPTUNA_STRATEGIES: tuple[type[OptunaStrategy], ...] = (OptunaNSGA2, OptunaTPE, OptunaGP)
