"""Deciding which architecture ships to which device: the library behind the dashboard's deciding views.

* :mod:`lts.decide.points`     -- measured points per device / run as DataFrames, bounded samples for browsers
* :mod:`lts.decide.fronts`     -- fronts under constraints (2-D and N-objective), knee and best-proxy picks
* :mod:`lts.decide.rankshift`  -- "optimal on one device, dominated on another", ratios, rank correlations
* :mod:`lts.decide.layers`     -- per-layer matrices of architectures and their differences
* :mod:`lts.decide.quality`    -- hypervolume and front size against evaluations and wall time
* :mod:`lts.decide.provenance` -- every latency with repeats, CV, protocol, threads, device fingerprint
* :mod:`lts.decide.remeasure`  -- fresh measurements on this host, keeping the replaced ones
* :mod:`lts.decide.repro`      -- reproducibility bundles and re-running an imported run here
"""
