"""Multi-objective search: strategies (:mod:`.strategies`), proxy objectives scored per candidate
(:mod:`.scoring`), the resumable runner (:mod:`.runner`), sessions (:mod:`.session`), results bundles
checked with the search's settings (:mod:`.exchange`) and the defaults the CLI and dashboard share
(:mod:`.defaults`). Objectives and constraints are :mod:`lts.objectives`, Pareto tools :mod:`lts.pareto`."""
