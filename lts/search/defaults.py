"""Defaults and policies of a new search that the CLI and the dashboard share.

Plain Python (no numpy, no store): ``lts --help`` and the dashboard's form read them. Each is one
function or constant, called from both ``lts search`` (:mod:`lts.cli`) and the Search page
(``dashboard/views/search.py``), so the two cannot drift apart.
"""

from __future__ import annotations

OBJECTIVES: tuple[str, ...] = ("proxy", "latency", "memory")  # what a search trades off unless told
POPULATION = 20  # evolution: random initial members, then the size of the parent pool
SURROGATE_POPULATION = 10  # with the cost surrogate, which screens children from the 11th member on
GENERATION = 10  # evolution: children proposed per generation


def default_population(surrogate: bool) -> int:
    """The evolution population when none is given: 10 with the cost surrogate, else 20."""
    return SURROGATE_POPULATION if surrogate else POPULATION
