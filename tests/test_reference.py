"""LTS's published data: our counts reproduce it, and the proxy's correlations match the paper."""

import gzip
import json

import pytest

from lts.reference import correlations, load_reference, pack, param_agreement


@pytest.fixture(scope="module")
def records():
    return load_reference()


def test_every_published_count_is_reproduced(records):
    assert len(records) == 636
    for set_name, row in param_agreement(records).items():
        assert row["nonembedding_exact"] == row["n"], set_name
        assert row["total_exact"] == row["n"], set_name
        assert row["attn_exact"] == row["ffn_exact"] == row["n"], set_name


def test_spearman_matches_the_paper(records):
    got = {(r["set"], r["proxy"]): r for r in correlations(records)}
    assert got[("random_GPT2_wt103", "decoder_params")]["spearman"] == pytest.approx(0.967, abs=5e-4)
    assert got[("random_TransXL_wt103", "decoder_params")]["spearman"] == pytest.approx(0.974, abs=5e-4)
    assert got[("random_GPT2_wt103", "decoder_params")]["kendall"] == pytest.approx(0.847, abs=5e-4)
    assert got[("random_GPT2_wt103", "total_params")]["spearman"] == pytest.approx(0.737, abs=5e-4)
    assert got[("random_TransXL_wt103", "total_params")]["spearman"] == pytest.approx(0.261, abs=5e-4)


def test_records_carry_devices_latency_and_memory(records):
    pareto = [r for r in records if r.kind == "pareto"]
    assert {r.device_name for r in pareto} == {"LTS paper: ARM CPU", "LTS paper: Core i7", "LTS paper: Titan Xp"}
    assert all(r.latency_ms and r.memory_mb for r in pareto)
    assert all(r.valid_ppl for r in records if r.kind == "random")


def test_shipped_file_is_the_repacked_original(shared_dir, tmp_path):
    src = shared_dir / "reference" / "lts_published"
    if not src.is_dir():
        pytest.skip(f"{src} not present")
    out = tmp_path / "packed.json.gz"
    assert pack(src, out) == 636
    from lts.reference import DATA_FILE

    with gzip.open(out, "rt") as a, gzip.open(DATA_FILE, "rt") as b:
        assert json.load(a) == json.load(b)
