"""Architectures out of lts: Hugging Face folders (with provenance, and trained weights when kept),
lts JSON, and the selection document every reader of lts accepts (:mod:`lts.space.documents`).

``lts export`` and the dashboard's downloads are both this module.
"""

from __future__ import annotations

import io
import json
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any, Sequence

from lts import __version__
from lts.errors import LtsError
from lts.space.config import Config, config_from_json
from lts.space.counts import proxy_values
from lts.store import measurements as store_measurements
from lts.store import reads
from lts.store import validations as store_validations
from lts.store.db import Store

FORMATS = ("hf", "lts", "gpt2")


def stored_config(store: Store, arch_id: str) -> Config:
    row = reads.architecture(store, arch_id)
    if row is None:
        raise LtsError(f"no architecture {arch_id!r} in {store.path}")
    return config_from_json(row["config_json"])


def provenance(store: Store | None, config: Config, weights: store_validations.TrainedWeights | None = None
               ) -> dict[str, Any]:
    """Where an architecture comes from: its proxies, every measurement (device, protocol, latency,
    memory), the runs that evaluated it, its validation perplexities, and what the weights are."""
    out: dict[str, Any] = {"arch_id": config.arch_id, "family": config.family, "lts_version": __version__,
                           "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                           "proxies": proxy_values(config)}
    if store is not None and reads.architecture(store, config.arch_id) is not None:
        out["measurements"] = [
            {k: m[k] for k in ("device", "protocol", "latency_ms", "peak_memory_mb", "infeasible", "measured_at")}
            for m in store_measurements.of_architecture(store, config.arch_id)]
        out["runs"] = [{"run_id": r["run_id"], "on_frontier": bool(r["on_frontier"])}
                       for r in reads.memberships(store, config.arch_id)]
        out["validations"] = reads.validation_ppls(store, config.arch_id)
    out["weights"] = ({"trained_by_validation": weights.validation_id, "valid_ppl": weights.valid_ppl,
                       "sha256": weights.sha256} if weights is not None else None)
    return out


def readme(config: Config, prov: dict[str, Any]) -> str:
    """A model card: what the architecture is, where lts measured it, and how to load it."""
    p = prov["proxies"]
    lines = [
        f"# lts architecture {config.arch_id} ({config.family})", "",
        "Found by lts (training-free, hardware-aware architecture search). "
        + ("The weights are those a validation run trained." if prov.get("weights") else
           "This folder holds the architecture only: `from_config` builds it with a fresh init, to train."), "",
        "| proxy | value |", "| --- | --- |",
        *(f"| {k} | {v:,} |" for k, v in p.items()), "",
    ]
    meas = prov.get("measurements") or []
    if meas:
        lines += ["## Measured on", "", "| device | protocol | latency (ms) | peak memory (MB) |",
                  "| --- | --- | --- | --- |"]
        for m in meas:
            lat = "infeasible" if m["infeasible"] else (f"{m['latency_ms']:.3f}" if m["latency_ms"] is not None else "-")
            mem = f"{m['peak_memory_mb']:.1f}" if m["peak_memory_mb"] is not None else "-"
            lines.append(f"| {m['device']} | `{m['protocol']}` | {lat} | {mem} |")
        lines.append("")
    if prov.get("runs"):
        lines += ["Runs: " + ", ".join(f"`{r['run_id']}`" + (" (frontier)" if r["on_frontier"] else "")
                                       for r in prov["runs"]), ""]
    if prov.get("validations"):
        lines += ["Validation perplexities: " + ", ".join(f"`{v['validation_id']}` {v['valid_ppl']:.2f}"
                                                       for v in prov["validations"]), ""]
    lines += [
        "## Load", "", "```python",
        "import lts  # registers lts_gpt2 / lts_transxl / lts_darts with transformers' Auto classes",
        "from transformers import AutoConfig, AutoModelForCausalLM", "",
        "model = AutoModelForCausalLM.from_pretrained(folder)" if prov.get("weights") else
        "model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder))",
        "```", "",
        "Without lts installed, pass `trust_remote_code=True`: the model code is in this folder "
        "(it imports only torch and transformers).",
        "`config.json` carries the lts fields; `lts_architecture.json` is the lts config (`lts proxy`, "
        "`lts measure` and `lts export` read either). Full provenance: `config.json` → `lts`.", "",
    ]
    return "\n".join(lines)


def write(store: Store | None, config: Config, out_dir: str | Path, fmt: str = "hf",
          trained: bool = False, validation_id: str | None = None) -> list[Path]:
    """Write one architecture to ``out_dir`` as ``fmt`` (hf: a Hugging Face folder of the lts model; gpt2:
    one of transformers' own ``GPT2LMHeadModel``, where the shape has one; lts: the lts JSON, plus
    ``model.safetensors`` of lts's own state when trained); returns the files."""
    if fmt not in FORMATS:
        raise LtsError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "gpt2":
        from lts.models.hf import why_not_stock_gpt2

        why = why_not_stock_gpt2(config)
        if why:  # before anything is read or written
            raise LtsError(f"{config.arch_id}: {why}")
    weights = None
    if trained or validation_id:
        if store is None:
            raise LtsError("trained weights come from a database: give an architecture id, not a file")
        weights = store_validations.trained_weights(store, config.arch_id, validation_id)
        if weights is None:
            which = f"validation {validation_id} kept" if validation_id else "no validation run kept"
            raise LtsError(f"{which} {'no ' if validation_id else 'the '}weights of {config.arch_id} "
                           "(lts validate --keep-weights-mb MB keeps them)")
    prov = provenance(store, config, weights)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise LtsError(f"{out}: exists and is not a folder")
    if fmt == "lts":
        out.mkdir(parents=True, exist_ok=True)
        files = [out / f"{config.arch_id}.json"]
        files[0].write_text(json.dumps({"arch_id": config.arch_id, "config": config.to_dict(),
                                        "provenance": prov}, indent=2, sort_keys=True) + "\n")
        if weights is not None:
            files.append(out / f"{config.arch_id}.safetensors")
            files[1].write_bytes(weights.data)
        return files
    from lts.models.hf import save_folder, save_stock_gpt2

    model = None
    if weights is not None:
        from lts.models import model_from_bytes

        model = model_from_bytes(config, weights.data)
    save = save_stock_gpt2 if fmt == "gpt2" else save_folder
    return save(config, out, weights=model, provenance=prov, readme=readme(config, prov))


def hf_zip(store: Store, arch_ids: Sequence[str]) -> bytes:
    """Hugging Face folders of ``arch_ids`` (trained where a validation kept weights) in one zip,
    a folder per architecture."""
    buf = io.BytesIO()
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for arch_id in arch_ids:
            config = stored_config(store, arch_id)
            trained = store_validations.has_trained_weights(store, arch_id)  # write() reads them once
            for f in write(store, config, Path(tmp) / arch_id, "hf", trained=trained):
                zf.write(f, f"{arch_id}/{f.name}")
    return buf.getvalue()


def selection_json(store: Store, arch_ids: Sequence[str]) -> bytes:
    """A selection of architectures as one document ``{"architectures": [{arch_id, config, proxies,
    measurements}]}``, which ``lts proxy``, ``lts measure`` and ``lts export`` read."""
    out = []
    for arch_id in arch_ids:
        config = stored_config(store, arch_id)
        row = reads.architecture(store, arch_id) or {}
        out.append({
            "arch_id": arch_id, "config": config.to_dict(),
            "proxies": {k: row.get(k) for k in ("decoder_params", "total_params", "flops")},
            "measurements": store_measurements.of_architecture(store, arch_id),
        })
    return json.dumps({"architectures": out}, indent=2, sort_keys=True).encode()
