"""Constants of the cost surrogates that the CLI needs without numpy, scipy or scikit-learn.

:mod:`lts.surrogate.fit` pulls scipy and the store; ``lts --help`` registers ``lts surrogate`` with these.
"""

from __future__ import annotations

KINDS: tuple[str, ...] = ("linear", "gbm", "linear+gp")  # the models fit_best chooses among
DEFAULT_TRAIN = 200  # training architectures; the rest are held out
