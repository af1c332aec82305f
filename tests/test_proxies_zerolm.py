"""ZeroLM: the formula on hand-set weights, its analytic expectation, and the alpha heuristics."""

import random

import numpy as np
import pytest
import torch
from scipy import stats

from conftest import small_space
from lts.models import build_model
from lts.proxies import zerolm
from lts.space.counts import decoder_params
from lts.space.config import config_from_dict


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _fill(model, value: float) -> None:
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(value)


def test_zerolm_equals_hand_computation_gpt2():
    # d_model 4, two heads of width 2, FFN width 8, every weight 1, the query of head 0 set to 2.
    cfg = config_from_dict({"family": "gpt2", "n_layer": 1, "d_model": 4, "d_embed": 4, "div_val": 1, "n_head": 2,
                            "d_inner": 8, "vocab_size": 10, "tgt_len": 4})
    model = build_model(cfg)
    _fill(model, 1.0)
    with torch.no_grad():
        model.layers[0].attn.c_attn.weight[0:2].fill_(2.0)  # rows 0-1: query projection of head 0
    # per-head Q/K/V blocks are 2x4: ||W||^2 / min(2, 4) = 8 / 2 = 4, except Q head 0: 32 / 2 = 16;
    # output projection 4x4 of ones: 16 / 4 = 4; FFN 8x4 and 4x8 of ones: 32 / 4 = 8 each.
    parts = zerolm.weight_parts(model)
    assert parts == zerolm.ZeroLMParts(ffn=16.0, attn=16.0 + 5 * 4.0 + 4.0)
    assert zerolm.zerolm(model, alpha=0.5) == 16.0 + 0.5 * 40.0


def test_zerolm_equals_hand_computation_transxl():
    cfg = config_from_dict({"family": "transxl", "n_layer": 2, "d_model": 4, "d_embed": 4, "div_val": 1,
                            "n_head": [2, 1], "d_inner": [8, 2], "vocab_size": 10, "tgt_len": 4, "mem_len": 2})
    model = build_model(cfg)
    _fill(model, 1.0)
    # layer 0: qkv 6 head blocks 2x4 -> 4 each = 24; r_net 2 blocks -> 8; o_net 4x4 -> 4; FFN 8 + 8
    # layer 1: qkv 3 head blocks 4x4 -> 4 each = 12; r_net 1 block -> 4; o_net -> 4; FFN 2x4: 8/2 = 4, twice
    parts = zerolm.weight_parts(model)
    assert parts == zerolm.ZeroLMParts(ffn=16.0 + 8.0, attn=36.0 + 20.0)


def test_expected_parts_formula_and_agreement_with_init():
    cfg = config_from_dict({"family": "gpt2", "n_layer": 2, "d_model": 64, "d_embed": 64, "div_val": 1,
                            "n_head": [4, 8], "d_inner": [256, 128], "vocab_size": 300, "tgt_len": 8})
    var = zerolm.INIT_STD**2
    exp = zerolm.expected_parts(cfg)
    assert exp.attn == pytest.approx(var * (64 * (3 * 4 + 1) + 64 * (3 * 8 + 1)))
    assert exp.ffn == pytest.approx(var * 2 * (256 + 128))
    got = zerolm.weight_parts(build_model(cfg, seed=3))
    # i.i.d. normal(0, 0.02) weights: the statistic is its expectation up to ~sqrt(2/(m n)) noise
    assert got.attn == pytest.approx(exp.attn, rel=0.03)
    assert got.ffn == pytest.approx(exp.ffn, rel=0.03)


def test_weight_statistic_ranks_like_its_expectation():
    rng = random.Random(4)
    space = small_space("transxl", d_model=[32, 48], d_inner={"min": 32, "max": 64})
    cfgs = [space.sample(rng) for _ in range(25)]
    alpha = 1.0
    weights = [zerolm.zerolm(build_model(c, seed=0), alpha) for c in cfgs]
    analytic = [zerolm.zerolm_expected(c, alpha) for c in cfgs]
    assert stats.spearmanr(weights, analytic).statistic > 0.97


def test_self_parameter_alpha_follows_the_parameter_count():
    # attention capacity tracks the parameter count, FFN capacity is noise: a large alpha wins
    rng = np.random.default_rng(0)
    params = np.arange(1, 41, dtype=float)
    parts = [zerolm.ZeroLMParts(ffn=float(f), attn=float(p)) for f, p in zip(rng.permutation(40) * 100.0, params)]
    alpha = zerolm._best_alpha(parts, params)
    assert alpha >= 2**5  # the plateau where the FFN term no longer changes the ranking (ties aside)
    assert stats.spearmanr([p.score(alpha) for p in parts], params).statistic > 0.999
    # and the reverse: the FFN term alone ranks the perplexities, so alpha = 0
    ppl = 100.0 - params
    parts = [zerolm.ZeroLMParts(ffn=float(p), attn=float(f)) for p, f in zip(params, rng.permutation(40) * 1e3)]
    assert zerolm.fit_alpha(parts, ppl) == 0.0


def test_heuristic_alpha_is_deterministic_and_on_the_grid():
    for family in ("gpt2", "transxl"):
        a = zerolm.heuristic_alpha(family)
        assert a in zerolm.ALPHA_GRID
        assert zerolm.heuristic_alpha.__wrapped__(family) == a  # recomputed from scratch, same value
    rng = random.Random(0)
    cfgs = [small_space("gpt2").sample(rng) for _ in range(50)]
    a = zerolm.self_parameter_alpha(cfgs)
    rho = stats.spearmanr([zerolm.zerolm_expected(c, a) for c in cfgs], [decoder_params(c) for c in cfgs]).statistic
    best = max(stats.spearmanr([zerolm.zerolm_expected(c, g) for c in cfgs], [decoder_params(c) for c in cfgs]).statistic
               for g in zerolm.ALPHA_GRID)
    assert rho >= best - zerolm.ALPHA_TOLERANCE
