"""Constants of the cost surrogates that the CLI needs without numpy, scipy or scikit-learn.

:mod:`lts.surrogate.fit` pulls scipy and the store; ``lts --help`` registers ``lts surrogate`` with these.
"""

from __future__ import annotations

KINDS: tuple[str, ...] = ("linear", "gbm", "linear+gp")  # the models fit_best chooses among
DEFAULT_TRAIN = 200  # training architectures; the rest are held out
HOLD_OUT = 0.2  # the share always held out, so a fit on few measurements still reports its error
# A surrogate-assisted search: children proposed per child measured, and the optimism in predicted
# standard deviations. SurrogateSettings' defaults, which lts search and the Search page both use.
POOL_FACTOR = 30
Z = 1.0
