"""Architectures out of lts: ``lts export``, the selection document, kept weights, the dashboard's zip."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
import torch

from conftest import small_space
from helpers import FAKE_DEVICE, FakeMeasure
from lts.cli import main
from lts.export import hf_zip, selection_json
from lts.models import model_from_bytes
from lts.search.runner import SearchRunner, SearchSettings, create_run
from lts.space.config import config_from_json
from lts.space.counts import decoder_params
from lts.store import validations as store_validations
from lts.store.db import Store
from lts.text.corpus import load_corpus
from lts.text.tokenizer import TokenizerSpec
from lts.validate.recipe import Recipe
from lts.validate.runner import ValidationRunner
from lts.validate.session import ValidationSettings, create_validation

transformers = pytest.importorskip("transformers")
from transformers import AutoConfig, AutoModelForCausalLM  # noqa: E402

transformers.utils.logging.disable_progress_bar()
PROTOCOL = "torch-cpu-b1-sdefault-t1"


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """A finished search of small GPT-2s on a fake device: ``(db, frontier rows)``."""
    db = tmp_path_factory.mktemp("export") / "lts.db"
    s = Store(db)
    run = create_run(s, SearchSettings(space=small_space("gpt2"), budget=12, seed=3), FAKE_DEVICE, PROTOCOL)
    SearchRunner(s, run, measure=FakeMeasure()).run_to_end()
    front = s.run_rows(run, frontier_only=True)
    s.close()
    return db, front


def lts(capsys, *argv) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_export_writes_a_folder_transformers_loads_with_its_provenance(searched, tmp_path, capsys):
    db, front = searched
    arch = front[0]["arch_id"]
    rc, out, err = lts(capsys, "export", arch, "-o", tmp_path / "hf", "--db", db)
    assert rc == 0, err
    assert f"{arch} (gpt2, architecture only)" in out
    folder = tmp_path / "hf"
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "lts_gpt2" and config["architectures"] == ["LtsGPT2ForCausalLM"]
    assert config["lts"]["arch_id"] == arch and config["lts"]["measurements"][0]["device"] == FAKE_DEVICE["name"]
    assert config["auto_map"]["AutoModelForCausalLM"] == "hf_modeling.LtsGPT2ForCausalLM"
    card = (folder / "README.md").read_text()
    assert FAKE_DEVICE["name"] in card and PROTOCOL in card and f"{front[0]['decoder_params']:,}" in card
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder))
    cfg = config_from_json(json.dumps(json.loads((folder / "lts_architecture.json").read_text())))
    assert cfg.arch_id == arch and model.num_parameters(exclude_embeddings=True) == decoder_params(cfg)

    # what export wrote is an architecture document again
    for doc in (folder / "config.json", folder / "lts_architecture.json"):
        rc, out, err = lts(capsys, "proxy", doc)
        assert rc == 0, err
        assert json.loads(out)["arch_id"] == arch
    rc, _, err = lts(capsys, "export", folder / "config.json", "--format", "lts", "-o", tmp_path / "again")
    assert rc == 0, err
    again = json.loads((tmp_path / "again" / f"{arch}.json").read_text())
    assert again["arch_id"] == arch and again["provenance"]["weights"] is None


def test_the_selection_download_is_read_by_proxy_measure_and_export(searched, tmp_path, capsys):
    db, front = searched
    ids = [r["arch_id"] for r in front[:2]]
    s = Store(db)
    doc = tmp_path / "architectures.json"
    doc.write_bytes(selection_json(s, ids))
    s.close()
    rc, out, err = lts(capsys, "proxy", doc)
    assert rc == 0, err
    assert [json.loads(line)["arch_id"] for line in out.splitlines()] == ids
    rc, out, err = lts(capsys, "measure", doc, "--device-name", "here", "--timeout", "120")
    assert rc == 0, err
    assert [json.loads(line)["arch_id"] for line in out.splitlines()] == ids
    rc, out, err = lts(capsys, "export", doc, "-o", tmp_path / "out")
    assert rc == 0, err
    for arch in ids:
        assert json.loads((tmp_path / "out" / arch / "config.json").read_text())["lts"]["arch_id"] == arch


def test_the_dashboard_zip_holds_one_loadable_folder_per_architecture(searched, tmp_path):
    db, front = searched
    ids = [r["arch_id"] for r in front[:2]]
    s = Store(db)
    data = hf_zip(s, ids)
    s.close()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = set(zf.namelist())
        for arch in ids:
            assert {f"{arch}/config.json", f"{arch}/generation_config.json", f"{arch}/README.md",
                    f"{arch}/hf_modeling.py"} <= names
        zf.extractall(tmp_path)
    assert AutoConfig.from_pretrained(tmp_path / ids[1]).lts["arch_id"] == ids[1]


@pytest.mark.parametrize("argv, message", [
    (["export", "nosuchfile.json", "-o", "x"], "nosuchfile.json: no such file"),
    (["export", "0123456789abcdef", "-o", "x"], "no architecture '0123456789abcdef'"),
    (["export", "bad.json", "-o", "x"], "malformed JSON"),
    (["export", "gpt2_hf.json", "-o", "x"], "not an lts model: model_type is 'gpt2'"),
    (["export", "arch.json", "-o", "afile"], "afile: exists and is not a folder"),
    (["export", "arch.json", "-o", "x", "--trained"], "no validation run kept the weights"),
    (["proxy", "sel_bad.json"], "'architectures' must be a list"),
])
def test_bad_export_input_is_one_line_and_writes_nothing(searched, tmp_path, monkeypatch, capsys, argv, message):
    db, front = searched
    monkeypatch.chdir(tmp_path)
    if argv[0] == "export":
        argv = [*argv, "--db", str(db)]
    (tmp_path / "bad.json").write_text('{"family": "gpt2",')
    (tmp_path / "gpt2_hf.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": 2}))
    (tmp_path / "arch.json").write_text(config_from_json(front[0]["config_json"]).canonical_json())
    (tmp_path / "afile").write_text("")
    (tmp_path / "sel_bad.json").write_text(json.dumps({"architectures": {"a": 1}}))
    before = sorted(p.name for p in tmp_path.iterdir())
    rc, out, err = lts(capsys, *argv)
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and message in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


TINY_SPACE = {"family": "gpt2", "n_layer": {"min": 1, "max": 2}, "d_model": [16, 32], "d_embed": [16, 32],
              "div_val": [1], "n_head": [2], "d_inner": {"min": 32, "max": 64, "step": 32}}


def _validate(db: Path, tmp_path: Path, keep_mb: float) -> str:
    corpus = tmp_path / "corpus"
    corpus.mkdir(exist_ok=True)
    (corpus / "book.txt").write_text(load_corpus().documents[0].text[5000:45000])
    recipe = Recipe(steps=30, batch_size=8, seq_len=32, lr=3e-3, warmup_steps=4, eval_sequences=32,
                    keep_weights_mb=keep_mb)
    s = Store(db)
    vid = create_validation(s, ValidationSettings(space=TINY_SPACE, n_archs=2, seed=1, corpus=str(corpus),
                                                  tokenizer=TokenizerSpec("byte", 256), recipe=recipe),
                            tmp_path / "cache")
    ValidationRunner(s, vid).run_to_end()
    s.close()
    return vid


def test_validation_keeps_weights_and_export_trained_loads_them(tmp_path, capsys):
    db = tmp_path / "v.db"
    vid = _validate(db, tmp_path, keep_mb=10)
    s = Store(db)
    kept = store_validations.kept_weights(s, vid)
    assert len(kept) == 2 and all(n > 0 for n in kept.values())
    arch = sorted(kept)[0]
    weights = store_validations.trained_weights(s, arch)
    cfg = config_from_json(s.query("SELECT config_json FROM architectures WHERE arch_id = ?", (arch,))[0]["config_json"])
    s.close()
    trained = model_from_bytes(cfg, weights.data)

    rc, out, err = lts(capsys, "export", arch, "--trained", "-o", tmp_path / "hf", "--db", db)
    assert rc == 0, err
    assert "(gpt2, trained)" in out
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    x = torch.randint(0, 256, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(model(x).logits, trained(x), atol=1e-5, rtol=0)
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["lts"]["weights"]["trained_by_validation"] == vid
    assert config["lts"]["weights"]["sha256"] == weights.sha256
    assert "validation run trained" in (tmp_path / "hf" / "README.md").read_text()

    rc, _, err = lts(capsys, "export", arch, "--format", "lts", "--validation", vid, "-o", tmp_path / "l", "--db", db)
    assert rc == 0, err
    assert (tmp_path / "l" / f"{arch}.safetensors").read_bytes() == weights.data


def test_weights_over_the_limit_are_not_kept_and_export_trained_says_so(tmp_path, capsys):
    db = tmp_path / "v.db"
    vid = _validate(db, tmp_path, keep_mb=0.001)  # 1 kB: every model is larger
    s = Store(db)
    assert store_validations.kept_weights(s, vid) == {}
    arch = s.query("SELECT arch_id FROM validation_results WHERE validation_id = ?", (vid,))[0]["arch_id"]
    s.close()
    rc, _, err = lts(capsys, "export", arch, "--trained", "-o", tmp_path / "hf", "--db", db)
    assert rc == 2 and "no validation run kept the weights" in err and "--keep-weights-mb" in err
    assert not (tmp_path / "hf").exists()


HOMOGENEOUS = {"family": "gpt2", "n_layer": 2, "d_model": 64, "d_embed": 64, "n_head": 4, "d_inner": 128,
               "vocab_size": 256, "cutoffs": [], "tgt_len": 32}


def test_format_gpt2_writes_transformers_own_gpt2_and_refuses_other_shapes(tmp_path, capsys):
    doc = tmp_path / "arch.json"
    doc.write_text(json.dumps(HOMOGENEOUS))
    rc, out, err = lts(capsys, "export", doc, "--format", "gpt2", "-o", tmp_path / "gpt2", "--db", tmp_path / "x.db")
    assert rc == 0, err
    config = json.loads((tmp_path / "gpt2" / "config.json").read_text())
    assert config["model_type"] == "gpt2" and "auto_map" not in config and config["n_positions"] == 32
    assert config["lts"]["arch_id"] in out
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(tmp_path / "gpt2"))
    assert type(model).__name__ == "GPT2LMHeadModel"
    assert model.num_parameters(exclude_embeddings=True) == decoder_params(config_from_json(doc.read_text()))
    rc, out, err = lts(capsys, "proxy", tmp_path / "gpt2" / "lts_architecture.json")
    assert rc == 0 and json.loads(out)["arch_id"] == config["lts"]["arch_id"]

    doc.write_text(json.dumps({**HOMOGENEOUS, "n_head": [4, 2]}))
    rc, out, err = lts(capsys, "export", doc, "--format", "gpt2", "-o", tmp_path / "no", "--db", tmp_path / "x.db")
    assert rc == 2 and "cannot convert to GPT2LMHeadModel: layers differ in n_head" in err
    assert not (tmp_path / "no").exists()
