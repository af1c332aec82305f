"""LTS's published results (NeurIPS 2022), shipped with lts, as records like our own runs produce.

The data (``lts/data/lts_published.json.gz``) is a repacking of Archai's ``neurips-lts`` saved logs:
the architecture fields of every ``model_config.yaml`` and the ``params``/``ppl``/``latency``/
``memory`` summaries, unchanged in value. Provenance and the MIT notice are in
``lts/data/LTS_PUBLISHED_NOTICE.txt``. ``pack()`` rebuilds the file from the original tree.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from lts.errors import LtsError
from lts.space.counts import breakdown, proxy_values
from lts.space.config import Config, clip_cutoffs, config_from_dict

DATA_FILE = Path(__file__).parent / "data" / "lts_published.json.gz"
ARCH_KEYS = (
    "n_layer", "d_model", "d_embed", "d_inner", "n_head", "div_val", "cutoffs", "tie_weight",
    "tie_projs", "tgt_len", "mem_len", "n_token", "d_head", "adaptive", "pre_lnorm", "attn_type",
)
DEVICES = {"arm": "LTS paper: ARM CPU", "corei7": "LTS paper: Core i7", "titanxp": "LTS paper: Titan Xp"}
FAMILY_OF = {"GPT2": "gpt2", "TransXL": "transxl"}
# Shown wherever the published fronts are drawn next to this host's runs.
PAPER_CAVEAT = ("The LTS paper's fronts were measured on its own hardware (ARM CPU, Core i7, Titan Xp, ONNX Runtime) "
                "and their perplexities come from models trained on LM1B / WikiText-103: compare their shape and "
                "spread with yours, not their latencies or memory point by point.")


@dataclass
class ReferenceRecord:
    """One published architecture, in the shape of our own results."""

    set_name: str
    name: str
    family: str
    kind: str  # "random" (trained on WikiText-103) or "pareto" (LTS's frontier, trained on LM1B)
    dataset: str
    config: Config
    published_params: dict[str, float]
    valid_ppl: float | None = None
    test_ppl: float | None = None
    latency_ms: float | None = None
    memory_mb: float | None = None
    device_name: str | None = None
    proxies: dict[str, int] = field(default_factory=dict)


def _yaml(path: Path) -> Any:
    import yaml

    return yaml.safe_load(path.read_text())


def pack(source: Path, dest: Path = DATA_FILE) -> int:
    """Repack the original ``saved_logs`` tree at ``source`` into ``dest``; returns records written."""
    source = Path(source)
    if not source.is_dir():
        raise LtsError(f"{source}: not a directory of LTS saved logs")
    sets: dict[str, Any] = {}
    for set_dir in sorted(p for p in source.iterdir() if p.is_dir()):
        summaries = {
            kind: _yaml(set_dir / f"{kind}_summary.yaml") if (set_dir / f"{kind}_summary.yaml").exists() else {}
            for kind in ("params", "ppl", "latency", "memory")
        }
        records = []
        for cfg_path in sorted(set_dir.rglob("model_config.yaml")):
            rel = cfg_path.parent.relative_to(set_dir).parts
            name = "_".join(rel)  # config_3/j7 -> config_3_j7, as the summaries name them
            model_config = _yaml(cfg_path)
            records.append({
                "name": name,
                "model_config": {k: model_config[k] for k in ARCH_KEYS if k in model_config},
                "params": summaries["params"].get(name),
                "ppl": summaries["ppl"].get(name),
                "latency": summaries["latency"].get(name),
                "memory": summaries["memory"].get(name),
            })
        sets[set_dir.name] = records
    dest.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(dest, "wt") as fh:
        json.dump({"source": "microsoft/archai@47770415 archai/nlp/nas/saved_logs", "sets": sets}, fh,
                  sort_keys=True, separators=(",", ":"))
    return sum(len(r) for r in sets.values())


def lts_config(model_config: dict[str, Any], family: str) -> Config:
    """Our config for one of LTS's ``model_config.yaml`` dicts."""
    vocab = int(model_config["n_token"])
    cutoffs = clip_cutoffs(model_config.get("cutoffs", []), vocab)
    tie_projs = [bool(t) for t in model_config.get("tie_projs", [])][: len(cutoffs) + 1]
    tie_projs += [True] * (len(cutoffs) + 1 - len(tie_projs))
    data = {
        "n_layer": model_config["n_layer"],
        "d_model": model_config["d_model"],
        "d_embed": model_config["d_embed"],
        "div_val": model_config["div_val"],
        "n_head": model_config["n_head"],
        "d_inner": model_config["d_inner"],
        "vocab_size": vocab,
        "cutoffs": cutoffs,
        "tie_weight": bool(model_config.get("tie_weight", True)),
        "tie_projs": tie_projs,
        "tgt_len": model_config["tgt_len"],
    }
    if family == "transxl":
        data["mem_len"] = model_config["mem_len"]
        data["d_head"] = model_config.get("d_head", -1)
    return config_from_dict(data, family=family)


@lru_cache(maxsize=2)
def _raw(path: str) -> dict[str, Any]:
    try:
        with gzip.open(path, "rt") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise LtsError(f"{path}: reference data missing (reinstall lts or run 'lts reference pack')") from None


def load_reference(path: Path = DATA_FILE) -> list[ReferenceRecord]:
    """Every published architecture as a :class:`ReferenceRecord`, proxies computed by lts.

    Cached per file (the dashboard asks on every page view); treat the records as read-only.
    """
    return list(_load_reference(str(path)))


@lru_cache(maxsize=2)
def _load_reference(path: str) -> tuple[ReferenceRecord, ...]:
    out = []
    for set_name, records in sorted(_raw(path)["sets"].items()):
        kind, fam, dataset, *device = set_name.split("_")
        family = FAMILY_OF[fam]
        for r in records:
            cfg = lts_config(r["model_config"], family)
            ppl = r["ppl"]
            rec = ReferenceRecord(
                set_name=set_name, name=r["name"], family=family, kind=kind, dataset=dataset,
                config=cfg, published_params=r["params"] or {},
                device_name=DEVICES.get(device[0]) if device else None,
                latency_ms=r["latency"], memory_mb=r["memory"], proxies=proxy_values(cfg),
            )
            if isinstance(ppl, dict):
                rec.valid_ppl, rec.test_ppl = ppl.get("valid_ppl"), ppl.get("test_ppl")
            else:
                rec.valid_ppl = ppl
            out.append(rec)
    return tuple(out)


def param_agreement(records: list[ReferenceRecord]) -> dict[str, dict[str, int]]:
    """Per set: how many of our decoder/total counts equal the published nonembedding/total."""
    out: dict[str, dict[str, int]] = {}
    for r in records:
        row = out.setdefault(r.set_name, {"n": 0, "nonembedding_exact": 0, "total_exact": 0,
                                          "attn_exact": 0, "ffn_exact": 0})
        pub = r.published_params
        b = breakdown(r.config)
        row["n"] += 1
        row["nonembedding_exact"] += int(pub.get("nonembedding") == r.proxies["decoder_params"])
        row["total_exact"] += int(pub.get("total") == r.proxies["total_params"])
        row["attn_exact"] += int(pub.get("Attn") == b["attn"])
        row["ffn_exact"] += int(pub.get("FFN") == b["ffn"])
    return out


def correlations(records: list[ReferenceRecord], proxies: tuple[str, ...] = ("decoder_params", "total_params", "flops")) -> list[dict[str, Any]]:
    """Spearman and Kendall of each proxy against perplexity, per published set.

    Signs are flipped so that +1 means "a larger proxy ranks exactly as a lower perplexity",
    the convention of the LTS paper (0.967 for GPT-2's decoder params).
    """
    from scipy import stats  # here, not at import: scipy.stats costs ~0.5 s that `lts reference params` need not pay

    rows = []
    by_set: dict[str, list[ReferenceRecord]] = {}
    for r in records:
        if r.valid_ppl is not None:
            by_set.setdefault(r.set_name, []).append(r)
    for set_name, recs in sorted(by_set.items()):
        ppl = np.array([r.valid_ppl for r in recs], dtype=float)
        for proxy in proxies:
            values = np.array([r.proxies[proxy] for r in recs], dtype=float)
            rows.append({
                "set": set_name,
                "n": len(recs),
                "proxy": proxy,
                "spearman": float(stats.spearmanr(values, -ppl).statistic),
                "kendall": float(stats.kendalltau(values, -ppl).statistic),
            })
    return rows
