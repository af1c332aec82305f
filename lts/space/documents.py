"""The architecture documents lts reads: what ``lts proxy``, ``lts measure`` and ``lts export`` accept.

* one config object (``{"family": "gpt2", ...}``), a list of them, or JSON lines;
* an architecture record (``{"arch_id": ..., "config": {...}, ...}``), and the dashboard's selection
  download, ``{"architectures": [records]}``;
* a Hugging Face ``config.json`` lts wrote (``model_type`` ``lts_gpt2`` / ``lts_transxl`` / ``lts_darts``):
  its lts fields, the ``transformers`` ones left aside.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Iterator

from lts.errors import LtsError
from lts.space.config import CONFIG_TYPES, Config, config_from_dict, parse_json, short_repr

HF_MODEL_TYPES = {f"lts_{family}": family for family in CONFIG_TYPES}


def config_from_hf_dict(data: dict[str, Any]) -> Config:
    """The lts config in a ``config.json`` of model_type ``lts_<family>``."""
    family = HF_MODEL_TYPES.get(data.get("model_type"))  # type: ignore[arg-type]
    if family is None:
        raise LtsError(f"not an lts model: model_type is {short_repr(data.get('model_type'))} "
                       f"(expected one of {', '.join(HF_MODEL_TYPES)})")
    known = {f.name for f in dataclasses.fields(CONFIG_TYPES[family])}
    return config_from_dict({k: v for k, v in data.items() if k in known}, family=family)


def _one(item: Any) -> Config:
    if isinstance(item, dict) and "model_type" in item:
        return config_from_hf_dict(item)
    if isinstance(item, dict) and isinstance(item.get("config"), dict):  # an architecture record
        return config_from_dict(item["config"])
    return config_from_dict(item)


def items_of(text: str, source: str) -> list[Any]:
    """The JSON values a document holds, before they are read as configs."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return [parse_json(line, f"{source}: line {n}", line_numbers=False)
                for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    except (RecursionError, ValueError):
        parse_json(text, source)  # raises the one-line error
        raise
    if isinstance(data, dict) and "architectures" in data and "family" not in data and "model_type" not in data:
        data = data["architectures"]
        if not isinstance(data, list):
            raise LtsError(f"{source}: 'architectures' must be a list, got {type(data).__name__}")
    return data if isinstance(data, list) else [data]


def read_configs(text: str, source: str) -> Iterator[tuple[str, Config]]:
    """``(where, config)`` for every architecture in a document; each failure one line naming it."""
    items = items_of(text, source)
    if not items:
        raise LtsError(f"{source}: no config found")
    for i, item in enumerate(items):
        where = source if len(items) == 1 else f"{source}: config {i + 1}"
        try:
            yield where, _one(item)
        except LtsError as exc:
            raise LtsError(f"{where}: {exc}") from None
        except RecursionError:  # a value nested too deeply to compare
            raise LtsError(f"{where}: nested too deeply") from None
