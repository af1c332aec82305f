"""Search spaces: validated configs (:mod:`.config`), ranges with sampling/mutation (:mod:`.ranges`)
and the analytic parameter/FLOP counts of a config (:mod:`.counts`, :mod:`.darts_counts`)."""

from lts.space.config import (
    CONFIG_TYPES,
    FAMILIES,
    Config,
    GPT2Config,
    TransXLConfig,
    clip_cutoffs,
    config_from_dict,
    config_from_json,
)

__all__ = [
    "CONFIG_TYPES", "FAMILIES", "Config", "GPT2Config", "TransXLConfig",
    "clip_cutoffs", "config_from_dict", "config_from_json",
]

from lts.space.ranges import Dim, SearchSpace, load_space  # noqa: E402

__all__ += ["Dim", "SearchSpace", "load_space"]
