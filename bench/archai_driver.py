"""Run Microsoft Archai 1.0.0's own GPT-2 LTS search and time it; prints one JSON line.

    /work/archai-venv/bin/python bench/archai_driver.py [--n 60] [--seed 1]

Meant to be launched by bench/archai_peer.py in Archai's own venv (archai==1.0.0, torch==2.13.0,
transformers==4.27.4, onnxruntime==1.15.1, numpy<2): it imports only archai, torch and the
standard library, never lts. The search is Archai's LTS pipeline as its own scripts build it:
``TransformerFlexSearchSpace("gpt2")`` with its defaults, objectives ``non_embedding_params``
(``NonEmbeddingParamsProxy``, constraint 1e6..1e9), ``onnx_latency``
(``TransformerFlexOnnxLatency``) and ``onnx_memory`` (``TransformerFlexOnnxMemory``), all three
``compute_intensive=False``, searched by ``EvolutionParetoSearch``. The only changes are
(1) ``torch.onnx.export`` forced to ``dynamo=False`` (torch 2.13 defaults to the dynamo exporter,
which Archai's export cannot drive) and (2) a stop once ``--n`` architectures were evaluated, so
the count is exact. The last stdout line is the JSON result; Archai's own logging goes before it.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from importlib import metadata
from typing import Any

import torch
import torch.onnx
from overrides import overrides


def _patch_onnx_export() -> None:
    """Force the TorchScript exporter: torch >= 2.9 defaults ``torch.onnx.export`` to dynamo, whose
    graph Archai's dynamic axes, past-key-value inputs and weight sharing do not survive. Archai
    looks ``torch.onnx.export`` up at call time, so replacing the attribute is enough."""
    original = torch.onnx.export

    @functools.wraps(original)
    def export(*args: Any, **kwargs: Any) -> Any:
        kwargs["dynamo"] = False
        return original(*args, **kwargs)

    torch.onnx.export = export  # type: ignore[assignment]


_patch_onnx_export()

from archai.discrete_search.algos.evolution_pareto import EvolutionParetoSearch
from archai.discrete_search.api.search_objectives import SearchObjectives
from archai.discrete_search.evaluators.nlp.parameters import NonEmbeddingParamsProxy
from archai.discrete_search.evaluators.nlp.transformer_flex_latency import (
    TransformerFlexOnnxLatency,
)
from archai.discrete_search.evaluators.nlp.transformer_flex_memory import (
    TransformerFlexOnnxMemory,
)
from archai.discrete_search.search_spaces.nlp import TransformerFlexSearchSpace

# Seconds of every evaluate() call, per objective name (also the proxy's constraint checks, which
# Archai runs while sampling: they are part of what an evaluation costs it).
TIMES: dict[str, list[float]] = defaultdict(list)
VALUES: dict[str, list[float]] = defaultdict(list)  # what each call returned (s, MiB, parameters)


def _timed(name: str, fn: Callable[..., float]) -> Callable[..., float]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> float:
        t0 = time.perf_counter()
        try:
            value = fn(*args, **kwargs)
        finally:
            TIMES[name].append(time.perf_counter() - t0)
        VALUES[name].append(float(value))
        return value

    return wrapper


class _Done(Exception):
    """Raised once ``n`` architectures were evaluated (Archai's loop has no evaluation budget)."""


class BudgetedEvolutionParetoSearch(EvolutionParetoSearch):
    """Archai's search, cut to exactly ``budget`` evaluated architectures.

    Archai evaluates ``init_num_models`` first, then per iteration up to ``max_unseen_population``
    children; the next population is trimmed to what is left of the budget, and the search stops
    when nothing is left (after that iteration's Pareto update and saves, as Archai does them).
    """

    def __init__(self, *args: Any, budget: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.budget = budget
        self.evaluated = 0

    @overrides  # Archai's Searcher enforces the decorator on every override
    def on_search_iteration_start(self, current_pop: list) -> None:
        self.evaluated += len(current_pop)

    @overrides
    def select_next_population(self, current_pop: list) -> list:
        left = self.budget - self.evaluated
        if left <= 0:
            raise _Done
        return super().select_next_population(current_pop)[:left]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=60, help="architectures to evaluate")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workdir", default=None, help="Archai's output and ONNX scratch (default: a temp dir)")
    args = ap.parse_args()
    if args.n < 1:
        ap.error("--n must be at least 1")
    logging.getLogger().setLevel(logging.WARNING)

    # Both ONNX objectives write to and then delete ./tmp: run in a scratch dir of our own.
    workdir = args.workdir or tempfile.mkdtemp(prefix="archai-peer-")
    os.chdir(workdir)

    space = TransformerFlexSearchSpace("gpt2", random_seed=args.seed)
    latency = TransformerFlexOnnxLatency(space)
    memory = TransformerFlexOnnxMemory(space)
    proxy = NonEmbeddingParamsProxy()
    for name, evaluator in (("non_embedding_params", proxy), ("onnx_latency", latency), ("onnx_memory", memory)):
        evaluator.evaluate = _timed(name, evaluator.evaluate)  # type: ignore[method-assign]

    objectives = SearchObjectives()
    objectives.add_objective("non_embedding_params", proxy, higher_is_better=True,
                             compute_intensive=False, constraint=(1e6, 1e9))
    objectives.add_objective("onnx_latency", latency, higher_is_better=False, compute_intensive=False)
    objectives.add_objective("onnx_memory", memory, higher_is_better=False, compute_intensive=False)

    init = min(10, args.n)  # Archai's default initial population, or the whole budget if smaller
    algo = BudgetedEvolutionParetoSearch(
        space, objectives, os.path.join(workdir, "out"),
        num_iters=args.n,  # an upper bound (each iteration evaluates >= 1): _Done ends it at the budget
        init_num_models=init, save_pareto_model_weights=False, seed=args.seed, budget=args.n,
    )
    t0 = time.perf_counter()
    try:
        algo.search()
    except _Done:
        pass
    total = time.perf_counter() - t0

    n_eval = len(TIMES["onnx_latency"])
    opts = space.options
    out = {
        "n_evaluated": n_eval,
        "total_s": total,
        "per_arch_s": total / max(n_eval, 1),
        "objective_mean_s": {k: sum(v) / len(v) for k, v in TIMES.items() if v},
        "objective_mean_value": {k: sum(v) / len(v) for k, v in VALUES.items() if v},
        "objective_calls": {k: len(v) for k, v in TIMES.items()},
        # per evaluated architecture, so the split adds up against per_arch_s
        "objective_s_per_arch": {k: sum(v) / max(n_eval, 1) for k, v in TIMES.items()},
        "space": {
            "arch_type": space.arch_type,
            "n_layer": [space.min_layers, space.max_layers],
            "d_model": list(opts["d_model"]["values"]),
            "n_head": list(opts["n_head"]["values"]),
            "d_inner": list(opts["d_inner"]["values"]),
            "share_d_inner": bool(opts["d_inner"]["share"]),
            "vocab_size": space.vocab_size,
            "max_sequence_length": space.max_sequence_length,
            "mutation_prob": space.mutation_prob,
        },
        "latency": {
            "batch": latency.batch_size, "seq_len": latency.seq_len, "past_seq_len": latency.past_seq_len,
            "n_trials": latency.n_trials, "use_past": latency.use_past, "opset": latency.opset,
            "optimize": latency.optimize,
            "threads": 1,  # archai.onnx.onnx_loader.load_from_onnx: intra_op_num_threads = 1
            "torch_threads_export": torch.get_num_threads(),
        },
        "search": {"init_num_models": init, "num_random_mix": algo.num_random_mix,
                   "num_crossovers": algo.num_crossovers, "mutations_per_parent": algo.mutations_per_parent,
                   "max_unseen_population": algo.max_unseen_population, "iterations": algo.iter_num},
        "versions": {**{p: metadata.version(p) for p in ("archai", "torch", "transformers", "onnxruntime", "onnx", "numpy")},
                     "python": sys.version.split()[0]},
        "workdir": workdir,
    }
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
