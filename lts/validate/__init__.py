"""Validation runs: train candidate architectures on a real corpus and measure how well each proxy ranks them.

Modules, one job each:

* :mod:`lts.text` (below this package) -- the corpus and its fixed split, the tokenizer and encoded corpus
* :mod:`~lts.validate.recipe` / :mod:`~lts.validate.training` -- the one training recipe, and training one model
* :mod:`~lts.validate.candidates` -- validation spaces, seeded choice of architectures, search-run frontiers
* :mod:`~lts.validate.backends` -- running jobs in-process, in local worker processes, or on Ray
* :mod:`~lts.validate.session` / :mod:`~lts.validate.runner` -- creating, resuming, launching, cancelling
* :mod:`~lts.validate.correlations` -- Spearman/Kendall of every proxy with bootstrap intervals
* :mod:`~lts.validate.page` -- the data the dashboard's validation page shows (its charts: ``dashboard/``);
  :mod:`~lts.validate.defaults` -- the defaults ``lts validate`` and the page's form share
* :mod:`~lts.validate.cli` -- ``lts validate``, ``lts correlate``, ``lts validations``

Names are imported lazily, so ``import lts.validate`` does not load torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Corpus": "lts.text.corpus", "load_corpus": "lts.text.corpus",
    "TokenizerSpec": "lts.text.tokenizer", "TokenData": "lts.text.tokenizer", "prepare_tokens": "lts.text.tokenizer",
    "Recipe": "recipe", "TrainResult": "training", "train": "training", "evaluate": "training",
    "validation_space": "candidates", "choose": "candidates", "retarget": "candidates",
    "ValidationSettings": "session", "create_validation": "session", "get_validation": "session",
    "list_validations": "session", "result_rows": "session", "launch_background": "session",
    "cancel_validation": "session", "effective_status": "session",
    "ValidationRunner": "runner",
    "BootstrapSettings": "correlations", "correlate": "correlations", "validation_correlations": "correlations",
    "proxy_columns": "correlations",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'lts.validate' has no attribute {name!r}")
    module = _EXPORTS[name]
    return getattr(importlib.import_module(module if "." in module else f"lts.validate.{module}"), name)
