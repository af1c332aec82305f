"""The analytic proxies against built models (exact counts) and against torch's FLOP counter."""

import random

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from conftest import small_space
from lts.models import build_model, count_parameters
from lts.space.counts import breakdown, decoder_params, forward_flops, total_params
from lts.space.ranges import SearchSpace


def _spaces(family):
    yield SearchSpace.default(family)
    yield small_space(family)
    yield small_space(family, cutoffs=[], div_val=[1], d_embed=[16, 32])  # no clusters, with projections
    yield small_space(family, div_val=[1], d_embed=[8, 16], cutoffs=[100])  # div_val 1 with clusters
    yield small_space(family, tie_weight=False)


@pytest.mark.parametrize("family", ["gpt2", "transxl"])
def test_analytic_counts_equal_built_model_on_hundreds_of_configs(family):
    rng = random.Random(11)
    n = 0
    for space in _spaces(family):
        for _ in range(60):
            cfg = space.sample(rng)
            if rng.random() < 0.3:  # untied projections too
                cfg = cfg.replace(tie_projs=tuple(rng.random() < 0.5 for _ in cfg.tie_projs))
            counts = count_parameters(build_model(cfg, device="meta"))
            assert counts["decoder_params"] == decoder_params(cfg), cfg.canonical_json()
            assert counts["total_params"] == total_params(cfg), cfg.canonical_json()
            assert sum(breakdown(cfg).values()) == total_params(cfg)
            n += 1
    assert n == 300


@pytest.mark.parametrize("family", ["gpt2", "transxl"])
def test_counts_survive_materialisation_and_tying(family):
    rng = random.Random(2)
    space = small_space(family)
    for _ in range(10):
        cfg = space.sample(rng)
        model = build_model(cfg)
        counts = count_parameters(model)
        assert counts == {"decoder_params": decoder_params(cfg), "total_params": total_params(cfg)}
        if cfg.tie_weight:
            assert model.crit.out_layers[0].weight is (
                model.wte if family == "gpt2" else model.word_emb
            ).emb_layers[0].weight
        assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("family", ["gpt2", "transxl"])
def test_flops_equal_torch_flop_counter(family):
    rng = random.Random(5)
    space = small_space(family)
    for _ in range(12):
        cfg = space.sample(rng)
        model = build_model(cfg).eval()
        head = cfg.cutoffs[0] if cfg.cutoffs else cfg.vocab_size
        idx = torch.randint(0, head, (1, cfg.tgt_len))  # protocol: head-cluster tokens
        kwargs = {"mems": model.init_mems(1, cfg.mem_len)} if family == "transxl" else {}
        # the math backend runs attention as matmuls, which the counter sees
        with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as fc:
            model(idx, **kwargs)
        assert fc.get_total_flops() == forward_flops(cfg), cfg.canonical_json()


@pytest.mark.parametrize("family", ["gpt2", "transxl"])
def test_forward_gives_distributions_and_consistent_nll(family):
    rng = random.Random(9)
    space = small_space(family)
    for _ in range(5):
        cfg = space.sample(rng)
        model = build_model(cfg, seed=3).eval()
        g = torch.Generator().manual_seed(0)
        idx = torch.randint(0, cfg.vocab_size, (2, cfg.tgt_len), generator=g)
        tgt = torch.randint(0, cfg.vocab_size, (2, cfg.tgt_len), generator=g)
        with torch.no_grad():
            if family == "gpt2":
                logp, loss = model(idx), model(idx, tgt)
            else:
                logp, mems = model(idx)
                loss, _ = model(idx, tgt)
                assert len(mems) == cfg.n_layer and mems[0].shape == (2, min(cfg.tgt_len, cfg.mem_len), cfg.d_model)
        assert logp.shape == (2, cfg.tgt_len, cfg.vocab_size)
        torch.testing.assert_close(logp.exp().sum(-1), torch.ones(2, cfg.tgt_len))
        torch.testing.assert_close(loss, -logp.gather(-1, tgt[..., None]).mean(), rtol=1e-5, atol=1e-5)


def test_transxl_memory_changes_the_output_and_is_bounded():
    space = small_space("transxl")
    cfg = space.sample(random.Random(4))
    model = build_model(cfg).eval()
    idx = torch.randint(0, cfg.vocab_size, (1, cfg.tgt_len))
    with torch.no_grad():
        first, mems = model(idx)
        second, mems2 = model(idx, mems=mems)
    assert mems2[0].shape[1] == cfg.mem_len
    assert not torch.allclose(first, second)


def test_seeded_build_is_deterministic():
    cfg = small_space("gpt2").sample(random.Random(0))
    a, b = build_model(cfg, seed=1), build_model(cfg, seed=1)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize("family", ["gpt2", "transxl"])
def test_uninitialised_build_has_the_same_tensors_and_allocations(family):
    """init=False (the measuring workers' build): same counts, ties and forward shapes; weights are one
    seeded normal(0, 0.02) block repeated, biases zero, LayerNorms one, as the seeded init has them."""
    from lts.models.build import TILE

    cfg = small_space(family).sample(random.Random(3))
    real, bare = build_model(cfg), build_model(cfg, init=False)
    assert count_parameters(bare) == count_parameters(real)
    for (n, p), (m, q) in zip(real.named_parameters(), bare.named_parameters()):
        assert (n, p.shape, p.dtype) == (m, q.shape, q.dtype)
        if not p.std() > 0:  # biases and LayerNorms: exactly as seeded
            assert torch.equal(p, q)
        else:
            flat = q.reshape(-1)
            assert 0.015 < flat.std() < 0.025 and flat.abs().min() >= 0
            if flat.numel() > TILE:
                assert torch.equal(flat[TILE:2 * TILE][: flat.numel() - TILE], flat[: min(TILE, flat.numel() - TILE)])
    if cfg.tie_weight:
        emb = bare.wte if family == "gpt2" else bare.word_emb
        assert bare.crit.out_layers[0].weight is emb.emb_layers[0].weight
    idx = torch.zeros(1, cfg.tgt_len, dtype=torch.long)
    with torch.inference_mode():
        if family == "transxl":
            shapes = [tuple(t.shape) for t in (real(idx, mems=real.init_mems(1, cfg.mem_len))[0],
                                                bare(idx, mems=bare.init_mems(1, cfg.mem_len))[0])]
        else:
            shapes = [tuple(real(idx).shape), tuple(bare(idx).shape)]
    assert shapes[0] == shapes[1]
