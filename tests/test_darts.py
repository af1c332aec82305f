"""The differentiable search: exact reconstruction, exact gradients, flat activation memory, the
derived ``darts`` family (counts against built models, causality), and runs in the database."""

from __future__ import annotations

import itertools
import json
import random

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from lts.cli import main
from lts.darts.search import DartsSettings, run_darts
from lts.darts.supernet import SupernetSpec, build_supernet, set_trainable
from lts.errors import ConfigError, LtsError
from lts.models import build_model, count_parameters
from lts.models.darts_ops import make_op
from lts.models.reversible import _BackpropByReconstruction
from lts.space.counts import decoder_params, forward_flops, total_params
from lts.space.config import DartsConfig, config_from_dict, config_from_json, parse_darts_op
from lts.store import darts as darts_repo
from lts.store.db import Store
from lts.text.tokenizer import TokenizerSpec

SMALL_OPS = ("attn2", "conv3", "lightconv3", "dynconv3", "glu", "ffn", "identity", "zero")
ALL_KINDS = ("attn2", "attn4", "conv3", "conv11", "lightconv7", "dynconv5", "glu", "ffn", "identity", "zero")


def _supernet(n_layer: int = 3, n_split: int = 2, d_model: int = 32, seed: int = 1):
    spec = SupernetSpec(n_layer=n_layer, d_model=d_model, n_split=n_split, candidates=SMALL_OPS,
                        vocab_size=50, tgt_len=8, conv_heads=2)
    net = build_supernet(spec, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # unequal architecture weights, so every operation matters
        for p in net.arch_parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    return net


@pytest.mark.parametrize("n_split", [2, 3, 4])
def test_reconstruction_is_exact_in_float32(n_split, one_torch_thread):
    net = _supernet(n_layer=4, n_split=n_split, d_model=48)
    stack = net.model.stack
    x = torch.randn(2, 8, 48, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = stack(x)
        assert (y - x).abs().max() > 0.1  # the layers do change their input
        assert torch.allclose(stack.inverse(y), x, atol=1e-5, rtol=0)
        for layer in stack.layers:
            assert torch.allclose(layer.inverse(layer(x)), x, atol=1e-5, rtol=0)


def test_gradcheck_float64_through_reconstruction(one_torch_thread):
    net = _supernet(n_layer=2, d_model=16)
    net.model.double()
    stack = net.model.stack
    params = list(stack.parameters())
    assert any(p is net.arch_parameters()[0] for p in params)  # alpha is checked too
    x = torch.randn(1, 4, 16, dtype=torch.double, requires_grad=True, generator=torch.Generator().manual_seed(2))
    assert torch.autograd.gradcheck(
        lambda x, *ps: _BackpropByReconstruction.apply(x, stack.layers, False, *ps), (x, *params),
        eps=1e-6, atol=1e-5, fast_mode=True)


@pytest.mark.parametrize("part", ["weights", "arch", "all"])
def test_gradients_equal_ordinary_backprop(part, one_torch_thread):
    net = _supernet()
    net.model.double()
    if part != "all":
        set_trainable(net, part)
    gen = torch.Generator().manual_seed(3)
    idx, tgt = torch.randint(50, (2, 8), generator=gen), torch.randint(50, (2, 8), generator=gen)

    def grads(reconstruct: bool, in_place: bool) -> list[torch.Tensor | None]:
        net.model.zero_grad(set_to_none=True)
        net.model.stack.reconstruct = reconstruct
        net.model.stack.grads_in_place = in_place
        net.model(idx, tgt).backward()
        return [None if p.grad is None else p.grad.clone() for p in net.model.parameters()]

    plain = grads(False, False)
    for in_place in (True, False):
        rebuilt = grads(True, in_place)
        for a, b in zip(plain, rebuilt):
            assert (a is None) == (b is None)
            if a is not None:
                torch.testing.assert_close(b, a, rtol=1e-7, atol=1e-10)
    assert any(g is not None for g in plain)


def _saved_bytes(net, reconstruct: bool) -> int:
    """Bytes autograd keeps for backward during one forward (activation memory, deterministic)."""
    net.model.stack.reconstruct = reconstruct
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        if not isinstance(t, torch.nn.Parameter):
            total += t.numel() * t.element_size()
        return t

    idx = torch.randint(50, (2, 8), generator=torch.Generator().manual_seed(0))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        net.model(idx, idx)
    return total


def test_activation_memory_does_not_grow_with_depth(one_torch_thread):
    shallow, deep = _supernet(n_layer=2), _supernet(n_layer=8)
    assert _saved_bytes(shallow, True) == _saved_bytes(deep, True)  # only the stack's output is kept
    plain_shallow, plain_deep = _saved_bytes(shallow, False), _saved_bytes(deep, False)
    assert plain_deep > 3.5 * plain_shallow
    assert plain_deep > 10 * _saved_bytes(deep, True)


@pytest.mark.parametrize("name", ALL_KINDS)
def test_every_operation_is_causal_and_keeps_shape(name, one_torch_thread):
    torch.manual_seed(0)
    op = make_op(name, 16, ffn_mult=2, conv_heads=4)
    gen = torch.Generator().manual_seed(0)
    for p in op.parameters():
        with torch.no_grad():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    x = torch.randn(2, 12, 16, generator=gen)
    y = op(x)
    assert y.shape == x.shape
    x2 = x.clone()
    x2[:, 7:] += torch.randn(2, 5, 16, generator=gen)  # change the future only
    torch.testing.assert_close(op(x2)[:, :7], y[:, :7])


def _random_darts(rng: random.Random) -> DartsConfig:
    n_split = rng.choice([2, 3, 4])
    d = n_split * rng.choice([8, 16, 24])
    n_layer = rng.randint(1, 3)
    ops = [[rng.choice(ALL_KINDS) for _ in range(n_split)] for _ in range(n_layer)]
    ops = [[o if parse_darts_op(o)[0] != "attn" else f"attn{rng.choice([1, 2, 4])}" for o in row] for row in ops]
    return DartsConfig(n_layer=n_layer, d_model=d, n_split=n_split, ops=ops, vocab_size=rng.randint(10, 80),
                       tgt_len=rng.randint(4, 12), ffn_mult=rng.choice([1, 2, 4]), conv_heads=rng.choice([1, 2, 4]))


def test_counts_equal_the_built_model(one_torch_thread):
    rng = random.Random(0)
    for _ in range(40):
        cfg = _random_darts(rng)
        counts = count_parameters(build_model(cfg, device="meta"))
        assert counts == {"decoder_params": decoder_params(cfg), "total_params": total_params(cfg)}, cfg


def test_flops_equal_the_flop_counter(one_torch_thread):
    rng = random.Random(1)
    for _ in range(15):
        cfg = _random_darts(rng)
        model = build_model(cfg)
        with FlopCounterMode(display=False) as fc, torch.no_grad():
            model(torch.zeros(1, cfg.tgt_len, dtype=torch.long))
        # torch's counter does not count the CPU flash-attention kernel: add QK^T and AV as computed
        n_attn = sum(parse_darts_op(o)[0] == "attn" for row in cfg.ops for o in row)
        attention = n_attn * 4 * cfg.tgt_len**2 * cfg.split_width
        assert fc.get_total_flops() + attention == forward_flops(cfg), cfg


def test_whole_model_is_causal(one_torch_thread):
    cfg = DartsConfig(n_layer=2, d_model=32, n_split=2, ops=[["attn2", "dynconv3"], ["conv5", "lightconv3"]],
                      vocab_size=40, tgt_len=10, conv_heads=2)
    model = build_model(cfg, seed=3)
    idx = torch.randint(40, (1, 10), generator=torch.Generator().manual_seed(0))
    idx2 = idx.clone()
    idx2[0, 6:] = (idx2[0, 6:] + 1) % 40
    with torch.no_grad():
        torch.testing.assert_close(model(idx2)[:, :6], model(idx)[:, :6])


@pytest.mark.parametrize("data, message", [
    ({"ops": [["attn3", "ffn"], ["ffn", "ffn"]]}, "3 heads do not divide the split width 64"),
    ({"ops": [["conv", "ffn"], ["ffn", "ffn"]]}, "ops[0][0]: unknown operation 'conv'"),
    ({"ops": [["ffn"], ["ffn", "ffn"]]}, "ops[0] must list 2 operations"),
    ({"ops": [["ffn", "ffn"]]}, "ops must list 2 layers"),
    ({"n_split": 3}, "n_split=3 does not divide d_model=128"),
    ({"n_split": 1}, "n_split must be >= 2"),
    ({"ops": [["lightconv3", "ffn"], ["ffn", "ffn"]], "conv_heads": 3}, "conv_heads=3 does not divide"),
    ({"n_heads": 2}, "unknown key 'n_heads'"),
])
def test_config_errors_are_one_line(data, message):
    base = {"family": "darts", "n_layer": 2, "d_model": 128, "n_split": 2, "ops": [["ffn", "ffn"]] * 2}
    with pytest.raises(ConfigError) as info:
        config_from_dict({**base, **data})
    assert message in str(info.value) and "\n" not in str(info.value)


def test_config_round_trips_through_json():
    cfg = DartsConfig(n_layer=1, d_model=64, n_split=2, ops=[["attn4", "identity"]])
    again = config_from_json(cfg.canonical_json())
    assert again == cfg and again.arch_id == cfg.arch_id and isinstance(again.ops[0], tuple)


def test_derive_takes_the_strongest_non_zero_operation():
    net = _supernet(n_layer=2)
    names = net.spec.candidates
    with torch.no_grad():
        for p in net.arch_parameters():
            p.zero_()
        net.mixed[0][0].alpha[names.index("zero")] = 5.0  # zero is never derived
        net.mixed[0][0].alpha[names.index("conv3")] = 2.0
        net.mixed[1][1].alpha[names.index("glu")] = 1.0
    cfg = net.derive()
    assert cfg.ops[0][0] == "conv3" and cfg.ops[1][1] == "glu"
    assert cfg.ops[0][1] == names[0]  # a tie goes to the first candidate
    build_model(cfg)


def test_supernet_spec_errors():
    with pytest.raises(ConfigError, match="at least 2 distinct"):
        SupernetSpec(candidates=("ffn",))
    with pytest.raises(ConfigError, match="at least 2 distinct"):
        SupernetSpec(candidates=("zero", "zero"))
    with pytest.raises(ConfigError, match="attn6"):
        SupernetSpec(d_model=64, candidates=("attn6", "ffn"))


@pytest.fixture
def tiny_corpus(tmp_path):
    words = "the quick brown fox jumps over a lazy dog while emma reads to mr knightley".split()
    rng = random.Random(0)
    text = "\n".join(" ".join(rng.choice(words) for _ in range(12)) for _ in range(800))
    path = tmp_path / "tiny.txt"
    path.write_text(text)
    return path


def _settings(corpus, **kw) -> DartsSettings:
    spec = SupernetSpec(n_layer=2, d_model=32, n_split=2, candidates=SMALL_OPS, tgt_len=16, conv_heads=2)
    return DartsSettings(spec=spec, steps=kw.pop("steps", 12), batch_size=4, corpus=str(corpus),
                         tokenizer=TokenizerSpec("byte"), log_every=4, eval_batches=2, threads=1, **kw)


def test_run_is_stored_and_its_architecture_builds(tmp_path, tiny_corpus, one_torch_thread):
    store = Store(tmp_path / "lts.db")
    result = run_darts(store, _settings(tiny_corpus), tmp_path / "cache")
    run = darts_repo.get(store, result.run_id)
    assert (run["status"], run["step"], run["steps"], run["pid"]) == ("finished", 12, 12, None)
    assert store.runs() == []  # a DARTS search is a job of its own kind, not a search run
    state = run.result
    assert [h["step"] for h in state["history"]] == [4, 8, 12]
    assert state["derived"] == result.config.to_dict()
    assert len(state["final_weights"]) == 2 and len(state["final_weights"][0][0]) == len(SMALL_OPS)
    assert run.derived_arch_id == result.config.arch_id
    assert run.checkpoint_path is None and not darts_repo.checkpoint_path(store, result.run_id).exists()
    row = store.query("SELECT * FROM architectures WHERE arch_id = ?", (result.config.arch_id,))[0]
    cfg = config_from_json(row["config_json"])
    assert row["decoder_params"] == count_parameters(build_model(cfg, device="meta"))["decoder_params"]
    assert cfg.vocab_size == 257 or cfg.vocab_size == 256  # the byte tokenizer's vocabulary
    # the same seed gives the same search
    again = run_darts(store, _settings(tiny_corpus), tmp_path / "cache")
    assert again.config == result.config and again.weights == result.weights


def test_interrupted_run_keeps_its_history(tmp_path, tiny_corpus, one_torch_thread):
    store = Store(tmp_path / "lts.db")

    def stop(step, point):
        if step == 9:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_darts(store, _settings(tiny_corpus), tmp_path / "cache", on_step=stop)
    (run,) = darts_repo.list_all(store)
    assert run["status"] == "cancelled" and run["pid"] is None
    assert [h["step"] for h in json.loads(run["progress_json"])["history"]] == [4, 8]
    assert store.query("SELECT COUNT(*) AS n FROM run_members")[0]["n"] == 0


def test_cli_writes_a_config_that_lts_reads(tmp_path, tiny_corpus, capsys, one_torch_thread):
    out = tmp_path / "derived.json"
    rc = main(["darts", "--layers", "2", "--steps", "6", "--d-model", "32", "--seq-len", "16", "--batch-size", "4",
               "--ops", "attn2,conv3,ffn,zero", "--tokenizer", "byte", "--corpus", str(tiny_corpus), "--threads", "1",
               "--db", str(tmp_path / "lts.db"), "--out", str(out), "--no-progress"])
    assert rc == 0
    text = capsys.readouterr().out
    cfg = config_from_json(out.read_text())
    assert cfg.family == "darts" and f"derived architecture {cfg.arch_id}" in text
    assert main(["proxy", str(out)]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["decoder_params"] == decoder_params(cfg)


@pytest.mark.parametrize("args, message", [
    (["--ops", "attn2,bogus"], "unknown operation 'bogus'"),
    (["--splits", "3"], "does not divide d_model=32"),
    (["--corpus", "/nonexistent/corpus.txt"], "/nonexistent/corpus.txt"),
    (["--steps", "0"], "steps must be >= 1"),
])
def test_cli_bad_input_is_one_line(tmp_path, capsys, args, message):
    rc = main(["darts", "--layers", "1", "--d-model", "32", "--db", str(tmp_path / "lts.db"), "--no-progress",
               "--tokenizer", "byte", *args])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and err.count("\n") == 1
    assert Store(tmp_path / "lts.db").runs() == []  # nothing half-made
    assert darts_repo.list_all(Store(tmp_path / "lts.db")) == []


def test_every_pair_of_operations_builds():
    for a, b in itertools.product(ALL_KINDS, repeat=2):
        cfg = DartsConfig(n_layer=1, d_model=32, n_split=2, ops=[[a, b]], vocab_size=20, tgt_len=4, conv_heads=2)
        build_model(cfg, device="meta")
    with pytest.raises(LtsError):
        DartsConfig(n_layer=1, d_model=32, n_split=2, ops=[["attn32x", "ffn"]])


def test_dashboard_shows_a_darts_run(monkeypatch, tmp_path, tiny_corpus, one_torch_thread):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    db = tmp_path / "lts.db"
    result = run_darts(Store(db), _settings(tiny_corpus, steps=4), tmp_path / "cache")
    monkeypatch.setenv("LTS_DB", str(db))
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py"), default_timeout=60)
    at.run()
    for name in ("views/search.py", "views/frontier.py", "views/data.py", "views/darts.py", "views/architecture.py"):
        at.switch_page(name)
        at.run()
        assert not at.exception and not at.error, (name, [e.value for e in at.exception])
    at.text_input[0].set_value(result.config.arch_id).run()
    assert not at.exception and not at.error
    layers = at.dataframe[0].value
    assert list(layers.columns) == ["layer", "split 0 (16)", "split 1 (16)"]
    assert layers.iloc[0, 1:].tolist() == list(result.config.ops[0])
