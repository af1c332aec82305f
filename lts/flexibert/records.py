"""Reading FlexiBERT benchmark files: records (JSON or JSON.gz) and published proxy columns (CSV).

Any file in the published format works: a JSON list of records, each with an ``id``, a ``scores``
object holding ``glue`` (and the per-task scores), and the architecture under
``hparams.model_hparam_overrides`` (``hidden_size`` and ``nas_config.encoder_layers``). The whole file
is checked before anything is computed; a bad record gives one line naming the record and the field.
A record whose ``completed`` is false (the benchmark's template for untrained models) keeps its
architecture but has no GLUE score.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from lts.errors import LtsError
from lts.flexibert.config import FlexiBertConfig, config_from_dict

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "flexibert"
SHIPPED_RECORDS = DATA_DIR / "BERT_benchmark_dev.json.gz"
SHIPPED_PUBLISHED = DATA_DIR / "BERT_results_activation_dev.csv"
SCORE_KEYS = ("cola", "mnli", "mrpc", "qnli", "qqp", "rte", "sst", "sts", "glue")


@dataclass(frozen=True)
class BenchmarkRecord:
    id: int
    config: FlexiBertConfig
    glue: float | None  # None: not trained (completed false, or no score)
    scores: dict[str, float] = field(default_factory=dict)
    time_to_train: float | None = None


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise LtsError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise LtsError(f"{path}: is a folder, not a records file") from None
    if path.name.endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise LtsError(f"{path}: not a readable gzip file ({exc})") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise LtsError(f"{path}: not UTF-8 text") from None


def _score(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise LtsError(f"{where} must be a finite number, got {value!r}")
    return float(value)


def parse_record(rec: Any, where: str) -> BenchmarkRecord:
    """One record of the published format; ``where`` names it in errors ("FILE: record 3 (id 7)")."""
    if not isinstance(rec, Mapping):
        raise LtsError(f"{where}: a record must be a JSON object, got {type(rec).__name__}")
    rid = rec.get("id")
    if isinstance(rid, bool) or not isinstance(rid, int):
        raise LtsError(f"{where}: id must be an integer, got {rid!r}")
    where = f"{where} (id {rid})"
    try:
        overrides = rec["hparams"]["model_hparam_overrides"]
        arch = {"hidden_size": overrides["hidden_size"], "encoder_layers": overrides["nas_config"]["encoder_layers"]}
    except (KeyError, TypeError) as exc:
        missing = exc.args[0] if isinstance(exc, KeyError) else "a JSON object"
        raise LtsError(f"{where}: hparams.model_hparam_overrides needs hidden_size and nas_config.encoder_layers "
                       f"({missing!r} missing)") from None
    config = config_from_dict(arch, where)
    scores_in = rec.get("scores") or {}
    if not isinstance(scores_in, Mapping):
        raise LtsError(f"{where}: scores must be a JSON object")
    scores = {k: _score(v, f"{where}: scores.{k}") for k, v in scores_in.items() if k in SCORE_KEYS and v is not None}
    trained = rec.get("completed", True) is not False and "glue" in scores
    ttt = rec.get("time_to_train")
    return BenchmarkRecord(id=rid, config=config, glue=scores["glue"] if trained else None, scores=scores,
                           time_to_train=float(ttt) if isinstance(ttt, (int, float)) and not isinstance(ttt, bool) else None)


def load_records(path: str | Path = SHIPPED_RECORDS) -> list[BenchmarkRecord]:
    """Every record of a benchmark file (``.json`` or ``.json.gz``), in file order; ids must be unique."""
    path = Path(path)
    text = _read_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LtsError(f"{path}: malformed JSON ({exc.msg} at line {exc.lineno})") from None
    if isinstance(data, Mapping):  # one record on its own is a list of one
        data = [data]
    if not isinstance(data, list) or not data:
        raise LtsError(f"{path}: expected a non-empty JSON list of benchmark records")
    records = [parse_record(rec, f"{path.name}: record {i}") for i, rec in enumerate(data)]
    seen: dict[int, int] = {}
    for i, r in enumerate(records):
        if r.id in seen:
            raise LtsError(f"{path.name}: record {i} repeats id {r.id} (first at record {seen[r.id]})")
        seen[r.id] = i
    return records


def load_published(path: str | Path = SHIPPED_PUBLISHED) -> dict[int, dict[str, float]]:
    """Published proxy columns by architecture id: ``{id: {column: value}}`` (``GLUE Score`` included)."""
    path = Path(path)
    text = _read_text(path)
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows or "ID" not in rows[0]:
        raise LtsError(f"{path}: expected a CSV with an ID column and one column per proxy")
    out: dict[int, dict[str, float]] = {}
    for i, row in enumerate(rows, start=2):  # line numbers as an editor shows them
        try:
            rid = int(row["ID"])
            out[rid] = {k: float(v) for k, v in row.items() if k != "ID" and v not in ("", None)}
        except (TypeError, ValueError):
            raise LtsError(f"{path}: line {i}: ID and proxy values must be numbers") from None
    return out


def published_columns(table: Mapping[int, Mapping[str, float]]) -> list[str]:
    """The proxy columns of a published table, in file order (``GLUE Score`` is the target, not a proxy)."""
    first = next(iter(table.values()), {})
    return [c for c in first if c != "GLUE Score"]


def check_published_glue(records: Sequence[BenchmarkRecord], table: Mapping[int, Mapping[str, float]],
                         source: str) -> int:
    """How many records the published table covers; a GLUE score that disagrees with the record is an error."""
    n = 0
    for r in records:
        row = table.get(r.id)
        if row is None:
            continue
        n += 1
        glue = row.get("GLUE Score")
        if r.glue is not None and glue is not None and abs(glue - r.glue) > 1e-6 * max(1.0, abs(r.glue)):
            raise LtsError(f"{source}: id {r.id} has GLUE {glue} but its record says {r.glue}; wrong file?")
    return n
