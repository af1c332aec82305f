"""The zero-cost proxies: deterministic under a seed, side-effect free, and equal to hand computations."""

import math
import random

import numpy as np
import pytest
import torch

from conftest import small_space
from lts.models import build_model
from lts.proxies import zero_cost
from lts.proxies.compute import ProxySettings, proxy_config, score
from lts.space.counts import decoder_params
from lts.proxies.registry import select
from lts.proxies.tokens import corpus_batch, fit_to_vocab, stream_batch
from lts.space.config import config_from_dict


pytestmark = pytest.mark.usefixtures("one_torch_thread")


DATA_PROXIES = ("grad_norm", "snip", "synflow", "jacob_cov", "naswot", "head_confidence")


def _cfg(family: str, seed: int = 0):
    return small_space(family).sample(random.Random(seed))


def _tokens(cfg, batch=4, length=9, seed=0):
    return torch.randint(0, cfg.vocab_size, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("family", ["gpt2", "transxl"])
def test_proxies_are_deterministic_under_a_seed_and_leave_the_model_unchanged(family):
    cfg = _cfg(family, 3)
    tokens = _tokens(cfg)
    model = build_model(cfg, seed=7)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    first = {n: getattr(zero_cost, n)(model, tokens) for n in DATA_PROXIES}
    again = {n: getattr(zero_cost, n)(build_model(cfg, seed=7), tokens) for n in DATA_PROXIES}
    assert first == again  # bit for bit: same seed, same batch, same thread count
    assert all(math.isfinite(v) for v in first.values()), first
    for k, v in model.state_dict().items():  # synflow works on a copy; nothing else writes weights
        assert torch.equal(v, before[k]), k
    assert all(p.grad is None for p in model.parameters())  # no gradient left behind
    other = {n: getattr(zero_cost, n)(build_model(cfg, seed=8), tokens) for n in ("grad_norm", "synflow", "snip")}
    assert all(other[n] != first[n] for n in other)  # and the seed matters


def test_grad_norm_and_snip_equal_their_definitions_over_decoder_parameters():
    cfg = _cfg("gpt2", 1)
    tokens = _tokens(cfg)
    model = build_model(cfg, seed=0)
    loss = model(tokens[:, :-1], tokens[:, 1:])
    loss.backward()
    dec = {id(p) for m in model.decoder_modules() for p in m.parameters()}
    params = [p for p in model.parameters() if id(p) in dec]
    model2 = build_model(cfg, seed=0)
    assert zero_cost.grad_norm(model2, tokens) == pytest.approx(sum(float(p.grad.norm()) for p in params), rel=1e-5)
    assert zero_cost.snip(model2, tokens) == pytest.approx(
        sum(float((p.detach() * p.grad).abs().sum()) for p in params), rel=1e-5)


@pytest.mark.parametrize("family", ["gpt2", "transxl"])
def test_jacob_cov_equals_per_sequence_jacobians(family):
    cfg = _cfg(family, 2)
    tokens = _tokens(cfg, batch=5)
    model = build_model(cfg, seed=1)
    rows = []
    for b in range(tokens.size(0)):  # one sequence at a time: no batching shortcut
        inp = tokens[b : b + 1, : min(tokens.size(1) - 1, cfg.tgt_len)]
        h, x = zero_cost.decoder_output(model, inp, embed_leaf=True)
        (g,) = torch.autograd.grad(h.sum(), x)
        rows.append(g.reshape(-1).double().numpy())
    eig = np.linalg.eigvalsh(np.nan_to_num(np.corrcoef(np.stack(rows))))
    expected = -np.sum(np.log(eig + 1e-5) + 1.0 / (eig + 1e-5))
    # float32 batched vs one-by-one: equal to rounding (the score weighs near-zero eigenvalues by 1e5)
    assert zero_cost.jacob_cov(model, tokens) == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("family", ["gpt2", "transxl"])
def test_naswot_of_a_repeated_sequence_is_singular(family):
    cfg = _cfg(family, 5)
    model = build_model(cfg, seed=0)
    tokens = _tokens(cfg, batch=4)
    assert math.isfinite(zero_cost.naswot(model, tokens))
    tokens[1] = tokens[0]  # two identical activation codes: K has two equal rows
    assert zero_cost.naswot(model, tokens) == -math.inf


@pytest.mark.parametrize("family", ["gpt2", "transxl"])
def test_head_confidence_of_uniform_attention(family):
    cfg = config_from_dict({"family": family, "n_layer": 2, "d_model": 16, "d_embed": 16, "div_val": 1,
                            "n_head": [2, 4], "d_inner": 32, "vocab_size": 300, "tgt_len": 6,
                            **({"mem_len": 3} if family == "transxl" else {})})
    model = build_model(cfg, seed=0)
    with torch.no_grad():  # zero queries: every score is 0, so query q attends uniformly to q + 1 keys
        for layer in model.layers:
            attn = layer.attn.c_attn if family == "gpt2" else layer.dec_attn.qkv_net
            attn.weight.zero_()
            if family == "transxl":
                layer.dec_attn.r_w_bias.zero_()
                layer.dec_attn.r_r_bias.zero_()
    tokens = _tokens(cfg, batch=3, length=7)
    per_head = np.mean([1.0 / (q + 1) for q in range(6)])
    assert zero_cost.head_confidence(model, tokens) == pytest.approx(6 * per_head, rel=1e-6)


def test_token_batches_are_deterministic_and_fit_the_vocabulary():
    a = corpus_batch(4, 16, seed=0)
    assert a.tokens.shape == (4, 17) and a.tokens.dtype == torch.int64
    assert torch.equal(a.tokens, corpus_batch(4, 16, seed=0).tokens)
    assert not torch.equal(a.tokens, corpus_batch(4, 16, seed=1).tokens)
    assert int(a.tokens.max()) < 256
    assert int(fit_to_vocab(a.tokens, 50).max()) < 50
    stream = np.arange(100)
    b = stream_batch(stream, 3, 4, seed=2)
    assert all(list(row) == list(range(int(row[0]), int(row[0]) + 5)) for row in b)  # contiguous windows


def test_reduced_vocabulary_keeps_the_decoder():
    cfg = small_space("transxl", vocab_size=20000, cutoffs=[5000, 10000]).sample(random.Random(0))
    reduced = proxy_config(cfg, ProxySettings(reduce_vocab_above=8192, reduced_vocab=256))
    assert reduced.vocab_size == 256 and reduced.cutoffs == ()
    assert decoder_params(reduced) == decoder_params(cfg)
    assert proxy_config(cfg, ProxySettings(reduce_vocab_above=None)) is cfg


def test_score_times_every_proxy_and_is_reproducible():
    cfg = _cfg("gpt2", 9)
    batch = corpus_batch(4, 8, seed=0)
    specs = select(None)
    a = score(cfg, specs, batch.tokens, ProxySettings(batch=4, seq_len=8))
    b = score(cfg, specs, batch.tokens, ProxySettings(batch=4, seq_len=8))
    assert a.values == b.values
    assert set(a.seconds) == {s.name for s in specs} and all(v >= 0 for v in a.seconds.values())
    assert a.values["decoder_params"] == decoder_params(cfg)
