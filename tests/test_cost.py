"""On-device cost: device records, protocol keys, isolated measurement, failure handling, CLI.

No timing assertions here (the machines are shared and noisy): latency is only checked to be a
sane positive number. Fidelity figures live in bench/cost_fidelity.py.
"""

from __future__ import annotations

import contextlib
import json

import pytest
import torch

from lts.cli import main
from lts.cost import DeviceRecord, Measurement, Measurer, Protocol, detect_device
from lts.cost.stats import ci_within, cv, median_ci, median_ci_ranks
from lts.errors import LtsError
from lts.space.counts import total_params
from lts.space.config import config_from_dict

FAST = dict(min_repeats=3, max_repeats=10, max_seconds=0.2)  # quick, imprecise: tests only
SEQ = 32  # the shared measurer's input length; gpt2() learns 64 positions, so it fits


def gpt2(**over):
    spec = {"family": "gpt2", "n_layer": 2, "d_model": 32, "d_embed": 32, "n_head": 2, "d_inner": 64,
            "vocab_size": 500, "tgt_len": 64}
    spec.update(over)
    return config_from_dict(spec)


def transxl(**over):
    spec = {"family": "transxl", "n_layer": 2, "d_model": 32, "d_embed": 32, "n_head": 2, "d_inner": 64,
            "vocab_size": 500, "tgt_len": 16, "mem_len": 16}
    spec.update(over)
    return config_from_dict(spec)


@pytest.fixture(scope="module")
def device() -> DeviceRecord:
    return detect_device("test-box")


@pytest.fixture(scope="module")
def measurer(device):
    with Measurer(device, Protocol(seq_len=SEQ, **FAST)) as m:
        yield m


@contextlib.contextmanager
def settings(measurer, **values):
    """Change a shared measurer's memory limit or timeout for one test."""
    old = {k: getattr(measurer, k) for k in values}
    for k, v in values.items():
        setattr(measurer, k, v)
    try:
        yield measurer
    finally:
        for k, v in old.items():
            setattr(measurer, k, v)


# -- device and protocol --------------------------------------------------------------------
def test_device_id_is_stable_and_tells_devices_apart(device):
    again = detect_device("test-box")
    assert again.device_id == device.device_id and len(device.device_id) == 16
    int(device.device_id, 16)
    assert detect_device("other-box").device_id != device.device_id
    assert detect_device("test-box", threads=2).device_id != device.device_id
    assert device.kind == "cpu" and device.gpu is None and device.threads == 1
    assert device.cores >= 1 and device.ram_gb > 0 and device.cpu_model and device.torch_version
    assert DeviceRecord.from_dict(json.loads(json.dumps(device.to_dict()))) == device


def test_device_refuses_bad_input():
    with pytest.raises(LtsError, match="name"):
        detect_device("  ")
    with pytest.raises(LtsError, match="kind"):
        detect_device("x", kind="tpu")
    with pytest.raises(LtsError, match="threads"):
        detect_device("x", threads=0)
    if not torch.cuda.is_available():
        with pytest.raises(LtsError, match="CUDA"):
            detect_device("x", kind="cuda")
    with pytest.raises(LtsError, match="lacks"):
        DeviceRecord.from_dict({"name": "x"})


def test_protocol_key_names_what_changes_the_value():
    assert Protocol().key == "torch-cpu-b1-sdefault-t1"
    assert Protocol(batch=4, seq_len=64, threads=2).key == "torch-cpu-b4-s64-t2"
    assert Protocol(rel_ci=0.01, max_seconds=9, min_repeats=7, warmup=3).key == Protocol().key
    d = Protocol(seq_len=32).to_dict()
    assert d["key"] == "torch-cpu-b1-s32-t1" and Protocol.from_dict(d) == Protocol(seq_len=32)
    for bad in (dict(batch=0), dict(seq_len=-1), dict(threads=0), dict(kind="tpu"), dict(rel_ci=0),
                dict(min_repeats=5, max_repeats=2), dict(max_seconds=0)):
        with pytest.raises(LtsError):
            Protocol(**bad)
    with pytest.raises(LtsError, match="backend 'onnx' is not available"):
        Protocol(backend="onnx")
    # the clock: thread CPU time for one CPU thread unless asked otherwise, elapsed time otherwise
    assert Protocol().clock == "cpu" and Protocol(clock="cpu") == Protocol()
    assert Protocol(clock="wall").key == "torch-cpu-b1-sdefault-t1-wall"
    assert Protocol(threads=2).clock == "wall" and Protocol(kind="cuda").clock == "wall"
    with pytest.raises(LtsError, match="clock"):
        Protocol(threads=2, clock="cpu")


def test_measurer_refuses_a_device_protocol_mismatch(device):
    with pytest.raises(LtsError, match="threads"):
        Measurer(device, Protocol(threads=2))


def test_median_confidence_interval():
    assert median_ci_ranks(5) == (0, 4)  # too few samples for 95%: the full range
    assert median_ci_ranks(9) == (1, 7)  # P(B(9, .5) <= 1) = 0.0195 <= 0.025
    assert median_ci_ranks(20) == (5, 14)
    assert median_ci([3.0, 1.0, 2.0]) == (2.0, 1.0, 3.0)
    assert ci_within([100.0, 101.0, 99.0, 100.5, 99.5, 100.0], 0.03)
    assert not ci_within([100.0, 150.0, 99.0, 100.5, 99.5, 100.0], 0.03)
    assert cv([1.0]) == 0.0 and cv([1.0, 1.0]) == 0.0 and cv([1.0, 3.0]) == pytest.approx(2**0.5 / 2)


# -- measuring ------------------------------------------------------------------------------
def test_measures_a_small_gpt2(measurer, device):
    cfg = gpt2()
    r = measurer.measure(cfg)
    assert isinstance(r, Measurement) and r.infeasible is None
    assert (r.arch_id, r.device_id, r.protocol) == (cfg.arch_id, device.device_id, f"torch-cpu-b1-s{SEQ}-t1")
    assert r.latency_ms > 0 and 0 <= r.latency_cv < 10 and 3 <= r.repeats <= 10
    assert r.peak_memory_mb >= r.weights_memory_mb > 0 and r.seconds > 0
    assert r.latency_ms == r.latency_cpu_ms and r.latency_wall_ms > 0  # the default clock
    d = r.to_dict()
    for key in ("arch_id", "device_id", "protocol", "latency_ms", "latency_cv", "repeats",
                "peak_memory_mb", "infeasible", "seconds"):
        assert key in d
    assert Measurement.from_dict(json.loads(json.dumps(d))) == r
    assert measurer.measure(cfg.to_dict()).arch_id == cfg.arch_id  # a plain dict works too


def test_measures_transformer_xl_with_a_full_memory(measurer):
    short, full = measurer.measure(transxl(mem_len=1)), measurer.measure(transxl(mem_len=64))
    assert short.infeasible is None and full.infeasible is None
    assert full.latency_ms > 0 and full.peak_memory_mb > 0


def test_bigger_model_has_bigger_peak_memory_at_least_its_weights(measurer):
    small = gpt2(vocab_size=2000)
    big = gpt2(n_layer=4, d_model=256, d_embed=256, n_head=4, d_inner=1024, vocab_size=20000)
    rs, rb = measurer.measure(small), measurer.measure(big)
    weights_mb = 4 * total_params(big) / 2**20  # about 29 MB of fp32 weights
    assert rb.peak_memory_mb > rs.peak_memory_mb + 0.5 * weights_mb
    assert rb.weights_memory_mb >= 0.95 * weights_mb
    # the output alone is seq x vocab fp32 log-probs, held at the end of the forward
    assert rb.peak_memory_mb >= weights_mb + SEQ * 20000 * 4 / 2**20
    assert measurer.measure(big).peak_memory_mb == pytest.approx(rb.peak_memory_mb, rel=0.05)


def test_python_error_in_worker_is_infeasible_and_the_next_measure_works(measurer):
    # GPT-2 learns tgt_len positions: a 32-token input is impossible for tgt_len=16, fine for 64.
    pids = measurer.worker_pids
    bad = measurer.measure(gpt2(tgt_len=16))
    assert bad.infeasible and "exceeds tgt_len" in bad.infeasible and "\n" not in bad.infeasible
    assert bad.latency_ms is None and bad.repeats == 0
    good = measurer.measure(gpt2())
    assert good.infeasible is None and good.latency_ms > 0
    raised = measurer.measure(gpt2(), _fault="raise")
    assert raised.infeasible == "RuntimeError: injected fault"
    assert measurer.worker_pids == pids  # nobody died


def test_killed_worker_is_infeasible_and_the_measurer_recovers(measurer):
    cfg = gpt2()
    before = measurer.worker_pids
    dead = measurer.measure(cfg, _fault="sigkill")
    assert dead.infeasible == "worker died (signal 9 SIGKILL, likely out of memory)"
    assert dead.peak_memory_mb is None
    ok = measurer.measure(cfg)
    assert ok.infeasible is None and ok.latency_ms > 0
    assert measurer.worker_pids["memory"] != before["memory"]
    assert measurer.worker_pids["latency"] == before["latency"]
    dead = measurer.measure(cfg, _fault="latency:sigkill")
    assert dead.infeasible.startswith("worker died (signal 9") and dead.peak_memory_mb > 0
    assert measurer.measure(cfg).infeasible is None


def test_timeout_kills_and_recovers(measurer):
    before = measurer.worker_pids
    with settings(measurer, timeout_s=2):
        r = measurer.measure(gpt2(), _fault="hang")
    assert r.infeasible == "timed out after 2 s"
    # Recovery runs under the ordinary timeout: a fresh worker's first candidate (torch start-up,
    # first allocations) took 25 s on a loaded machine, which says nothing about the timeout.
    assert measurer.measure(gpt2()).infeasible is None
    assert measurer.worker_pids["memory"] != before["memory"]  # the hung worker was replaced


def test_memory_limit(measurer):
    big = gpt2(vocab_size=20000, d_model=128, d_embed=128, n_head=2, d_inner=256)  # ~10 MB weights
    with settings(measurer, memory_limit_mb=4):
        r = measurer.measure(big)
        assert r.infeasible.startswith("weights alone need 1") and "over the 4 MB limit" in r.infeasible
        assert r.peak_memory_mb is None and r.latency_ms is None  # refused before building anything
    with settings(measurer, memory_limit_mb=12):
        r = measurer.measure(big)  # the weights fit, the forward's output and activations do not
        assert r.infeasible.startswith("peak memory") and r.peak_memory_mb > 12 and r.latency_ms is None
        assert measurer.measure(gpt2()).infeasible is None


@pytest.mark.parametrize("early", [True, False])
def test_timing_early_or_after_the_memory_measurement_gives_both_figures_and_the_same_failures(measurer, early):
    big = gpt2(vocab_size=20000, d_model=128, d_embed=128, n_head=2, d_inner=256)
    with settings(measurer, time_early=early):
        ok = measurer.measure(gpt2())
        assert ok.infeasible is None and ok.latency_ms > 0 and ok.peak_memory_mb > 0 and ok.repeats >= 3
        assert measurer.measure(gpt2(), _fault="raise").infeasible == "RuntimeError: injected fault"
        dead = measurer.measure(gpt2(), _fault="latency:sigkill")
        assert dead.infeasible.startswith("worker died (signal 9") and dead.peak_memory_mb > 0
        with settings(measurer, memory_limit_mb=12):
            over = measurer.measure(big)
        assert over.infeasible.startswith("peak memory") and over.latency_ms is None
        again = measurer.measure(gpt2())
        assert again.infeasible is None and again.latency_ms > 0


def test_allocation_failure_is_out_of_memory_and_the_worker_survives(measurer):
    # 4M-word vocabulary, 2-wide embeddings: 46 MB of weights under a 64 MB limit, but the tail
    # cluster's logits and their log-softmax need 2 x 484 MB, over the worker's guard (limit + 512 MB).
    huge_vocab = gpt2(n_layer=1, d_model=2, d_embed=2, n_head=1, d_inner=2, vocab_size=4_000_000)
    assert 4 * total_params(huge_vocab) / 2**20 < 64
    pids = measurer.worker_pids
    with settings(measurer, memory_limit_mb=64):
        r = measurer.measure(huge_vocab)
    assert r.infeasible.startswith("out of memory: allocating"), r.infeasible
    assert measurer.worker_pids == pids
    assert measurer.measure(gpt2()).infeasible is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_measurement():
    dev = detect_device("gpu-box", kind="cuda")
    assert dev.gpu
    with Measurer(dev, Protocol(kind="cuda", **FAST)) as m:
        r = m.measure(gpt2())
        assert r.infeasible is None and r.latency_ms > 0 and r.peak_memory_mb >= r.weights_memory_mb > 0


# -- CLI ------------------------------------------------------------------------------------
def test_cli_measure_prints_one_json_line_per_config(tmp_path, capsys):
    f = tmp_path / "two.json"
    f.write_text(json.dumps([gpt2().to_dict(), transxl().to_dict()]))
    code = main(["measure", str(f), "--device-name", "cli-box", "--seq-len", "8", "--timeout", "60"])
    out, err = capsys.readouterr()
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["arch_id"] for r in rows] == [gpt2().arch_id, transxl().arch_id]
    for r in rows:
        assert r["infeasible"] is None and r["latency_ms"] > 0 and r["repeats"] >= 1
        assert r["latency_cv"] >= 0 and r["peak_memory_mb"] > 0
        assert r["protocol"] == "torch-cpu-b1-s8-t1"
        assert r["device"]["name"] == "cli-box" and r["device"]["device_id"] == r["device_id"]
        assert r["device_id"] == detect_device("cli-box").device_id


@pytest.mark.parametrize("text, message", [
    ('{"family": "gpt2", "n_layer":', "malformed JSON"),
    ('{"family": "gpt2", "n_layer": 2, "n_heads": 4}', "unknown key 'n_heads'"),
    ("", "no config found"),
])
def test_cli_measure_bad_file_is_one_line_and_status_2(tmp_path, capsys, text, message):
    f = tmp_path / "bad.json"
    f.write_text(text)
    assert main(["measure", str(f), "--device-name", "x"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("lts: error: ") and message in err


def test_cli_measure_bad_options(tmp_path, capsys):
    f = tmp_path / "a.json"
    f.write_text(json.dumps(gpt2().to_dict()))
    assert main(["measure", str(f), "--device-name", "x", "--backend", "onnxruntime", "--workload", "generate"]) == 2
    assert main(["measure", str(f), "--device-name", "x", "--threads", "0"]) == 2
    assert main(["measure", str(tmp_path / "missing.json"), "--device-name", "x"]) == 2
    err = capsys.readouterr().err
    assert err.count("lts: error: ") == 3 and err.count("\n") == 3
