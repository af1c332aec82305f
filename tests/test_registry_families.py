"""One proxy registry for every family: language models and FlexiBERT encoders, each spec declaring its families."""

from __future__ import annotations

import random

import pytest

from lts.errors import LtsError
from lts.flexibert.records import load_records
from lts.proxies import registry
from lts.proxies.compute import EncoderProxySettings, ProxySettings, score
from lts.space.ranges import SearchSpace

ZERO_COST = ("synflow", "snip", "grad_norm", "jacob_cov", "naswot", "head_confidence")


def test_each_family_lists_its_proxies_in_order():
    assert list(registry.PROXIES) == registry.names("gpt2") == registry.names("transxl") == registry.names("darts")
    assert registry.names("flexibert") == ["total_params", "encoder_params", "zerolm", "zerolm_ffn", "zerolm_attn",
                                           "zerolm_analytic", *ZERO_COST]
    lm, enc = registry.for_family("gpt2"), registry.for_family("flexibert")
    for name in (*ZERO_COST, "zerolm_ffn", "zerolm_attn"):  # one spec for every family
        assert lm[name] is enc[name]
    for name in ("total_params", "zerolm", "zerolm_analytic"):  # computed differently for encoders
        assert lm[name] is not enc[name] and "flexibert" not in lm[name].families
    assert "flops" not in enc and "encoder_params" not in lm


def test_selection_names_the_family():
    assert [s.name for s in registry.select(["zerolm", "snip"], "flexibert")] == ["zerolm", "snip"]
    with pytest.raises(LtsError, match="unknown FlexiBERT proxy 'flops'"):
        registry.select("flops", "flexibert")
    with pytest.raises(LtsError, match="unknown proxy 'encoder_params'"):
        registry.select("encoder_params")
    with pytest.raises(LtsError, match="unknown family 'bert'"):
        registry.for_family("bert")


def test_score_refuses_a_proxy_of_another_family():
    encoder = load_records()[0].config
    lm = SearchSpace.default("gpt2").sample(random.Random(0))
    enc_params = registry.get("encoder_params", "flexibert")
    assert score(encoder, [enc_params], None, EncoderProxySettings()).values["encoder_params"] > 0
    with pytest.raises(LtsError, match="does not apply to a gpt2 config"):
        score(lm, [enc_params], None, ProxySettings())
    with pytest.raises(LtsError, match="does not apply to a flexibert config"):
        score(encoder, [registry.get("flops")], None, EncoderProxySettings())
