"""The FlexiBERT encoder space: ZeroLM's benchmark (Serianni & Kalita's 500 trained architectures, GLUE).

* :mod:`lts.flexibert.config` -- ``FlexiBertConfig`` from the benchmark's record format, structural checks;
  :mod:`lts.flexibert.space` -- the published space (membership, size, seeded sampling).
* :mod:`lts.flexibert.model` -- the PyTorch builder (each operation defined there, with its source);
  :mod:`lts.flexibert.params` -- analytic parameter counts.
* :mod:`lts.flexibert.records` -- benchmark files (records JSON/JSON.gz, published proxy CSV).
* :mod:`lts.flexibert.benchmark` -- the ranking table against GLUE (``lts proxies benchmark flexibert``) of
  every proxy the one registry (:mod:`lts.proxies.registry`) declares for these encoders (what differs from
  the language models' proxies: :mod:`lts.proxies.encoders`).
"""

from lts.flexibert.config import FlexiBertConfig, LayerConfig, config_from_dict
from lts.flexibert.params import encoder_params, published_count, total_params

__all__ = ["FlexiBertConfig", "LayerConfig", "config_from_dict", "encoder_params", "published_count", "total_params"]
