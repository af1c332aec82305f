"""The onnxruntime backend: exported graphs compute what the torch models compute; its measurements
have their own cache key, real (resident) memory, and the refusals of what it does not run."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from conftest import small_space
from lts.cost import Measurer, Protocol, detect_device
from lts.errors import LtsError
from lts.models import build_model
from lts.models.onnx_export import SESSION_OPTIONS, export_onnx, ort_runner
from lts.search.session import plan_run

FAST = dict(min_repeats=3, max_repeats=10, max_seconds=0.3)


@pytest.mark.parametrize("family", ["gpt2", "transxl"])
def test_onnx_runtime_and_torch_agree_on_ten_random_configs_each(family, tmp_path, one_torch_thread):
    space = small_space(family)
    rng = random.Random(7)
    for i in range(10):
        cfg = space.sample(rng)
        model = build_model(cfg, seed=i).eval()
        idx = torch.randint(cfg.vocab_size, (2, cfg.tgt_len), generator=torch.Generator().manual_seed(i))
        mems = None
        if family == "transxl":
            mems = [torch.randn(2, cfg.mem_len, cfg.d_model, generator=torch.Generator().manual_seed(i))
                    for _ in range(cfg.n_layer)]
        with torch.inference_mode():
            want = model(idx, mems=mems) if mems is not None else model(idx)
        logp, new_mems = want if family == "transxl" else (want, [])
        path = str(tmp_path / f"{family}{i}.onnx")
        got = ort_runner(path=path, feeds=export_onnx(model, idx, mems, path), threads=1)()
        np.testing.assert_allclose(got[0], logp.numpy(), atol=1e-4, rtol=0)
        if family == "transxl":  # the new memory is computed too
            assert len(got) == 1 + cfg.n_layer
            np.testing.assert_allclose(got[-1], new_mems[-1].numpy(), atol=1e-4, rtol=0)


def test_onnx_runtime_measurements_have_their_own_key_and_real_memory():
    device = detect_device("test-box")
    cfg = small_space("gpt2").sample(random.Random(3))
    got = {}
    for backend in ("torch", "onnxruntime"):
        with Measurer(device, Protocol(backend=backend, **FAST)) as m:
            got[backend] = m.measure(cfg)
    ort = got["onnxruntime"]
    assert ort.infeasible is None and ort.protocol == "onnxruntime-cpu-b1-sdefault-t1"
    assert ort.latency_ms > 0 and ort.repeats >= 3
    # the session's resident memory, not the .onnx file size: positive, and a forward adds to it
    assert 0 < ort.weights_memory_mb < ort.peak_memory_mb
    assert got["torch"].protocol != ort.protocol


def test_the_protocol_records_the_session_options_and_refuses_what_onnx_runtime_does_not_run():
    p = Protocol(backend="onnxruntime", threads=2)
    assert p.key == "onnxruntime-cpu-b1-sdefault-t2"
    assert p.to_dict()["backend_options"] == {**SESSION_OPTIONS, "intra_op_num_threads": 2}
    assert Protocol().to_dict()["backend_options"] == {}
    assert Protocol.from_dict(p.to_dict()) == p
    from lts.decide.provenance import protocol_from_key

    assert protocol_from_key(p.key) == p
    for kw, msg in ((dict(kind="cuda"), "CPU provider"), (dict(workload="generate"), "generate runs on torch"),
                    (dict(quant="int8"), "use it with backend torch")):
        with pytest.raises(LtsError, match=msg):
            Protocol(backend="onnxruntime", **kw)
    with pytest.raises(LtsError, match="backend 'tensorrt' is not available"):
        Protocol(backend="tensorrt")
    plan = plan_run(small_space("gpt2"), "box", budget=2, backend="onnxruntime")
    assert plan.protocol.key == "onnxruntime-cpu-b1-sdefault-t1"


def test_lts_measure_takes_the_onnx_runtime_backend(tmp_path, capsys):
    import json

    from lts.cli import main

    cfg = small_space("transxl", mem_len=0).sample(random.Random(5))  # no memory: no memory inputs
    f = tmp_path / "c.json"
    f.write_text(json.dumps(cfg.to_dict()))
    main(["measure", str(f), "--device-name", "box", "--backend", "onnxruntime"])
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["protocol"] == "onnxruntime-cpu-b1-sdefault-t1" and row["infeasible"] is None
    assert row["latency_ms"] > 0 and row["peak_memory_mb"] > 0


def test_without_onnx_runtime_installed_the_backend_is_refused_in_one_line(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    with pytest.raises(LtsError, match=r"^the onnxruntime backend needs onnxruntime: pip install"):
        Protocol(backend="onnxruntime")
    assert Protocol().key == "torch-cpu-b1-sdefault-t1"
