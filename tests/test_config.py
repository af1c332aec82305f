import json

import pytest

from lts.errors import ConfigError
from lts.space.config import GPT2Config, TransXLConfig, config_from_dict, config_from_json


def test_defaults_are_valid_and_canonical_json_round_trips():
    for cfg in (GPT2Config(), TransXLConfig()):
        again = config_from_json(cfg.canonical_json())
        assert again == cfg
        assert again.arch_id == cfg.arch_id
        assert json.loads(cfg.canonical_json())["family"] == cfg.family


def test_arch_id_is_stable_across_releases():
    # A changed id would orphan every stored result: this literal must only change on purpose.
    cfg = GPT2Config(n_layer=2, d_model=64, d_embed=64, n_head=[2, 4], d_inner=[512, 640])
    assert cfg.arch_id == "1fdd0391dfca6d21"
    assert cfg.canonical_json() == (
        '{"cutoffs":[19997,39997],"d_embed":64,"d_inner":[512,640],"d_model":64,"div_val":1,'
        '"family":"gpt2","n_head":[2,4],"n_layer":2,"tgt_len":192,"tie_projs":[false,true,true],'
        '"tie_weight":true,"vocab_size":50264}'
    )


def test_key_order_and_d_embed_minus_one_do_not_change_identity():
    a = config_from_dict({"family": "gpt2", "n_layer": 1, "d_model": 64, "d_embed": -1, "n_head": [2], "d_inner": [512]})
    b = config_from_dict({"d_inner": [512], "n_head": [2], "d_embed": 64, "d_model": 64, "n_layer": 1, "family": "gpt2"})
    assert a.arch_id == b.arch_id
    assert a.d_embed == 64


@pytest.mark.parametrize(
    "data, field",
    [
        ({"family": "gpt2", "n_layer": 2, "d_model": 100, "n_head": [3, 4]}, "n_head[0]"),
        ({"family": "gpt2", "n_layer": 2, "n_head": [4, 4, 4]}, "n_head"),
        ({"family": "gpt2", "n_layer": 2, "d_inner": [512]}, "d_inner"),
        ({"family": "gpt2", "n_layer": 2, "n_heads": [4, 4]}, "n_heads"),
        ({"family": "gpt2", "n_layer": 0}, "n_layer"),
        ({"family": "gpt2", "n_layer": 2, "d_model": -64}, "d_model"),
        ({"family": "gpt2", "n_layer": 2, "d_inner": [512, "wide"]}, "d_inner[1]"),
        ({"family": "gpt2", "n_layer": True}, "n_layer"),
        ({"family": "gpt2", "n_layer": 1, "vocab_size": 1000, "cutoffs": [500, 2000], "tie_projs": [False, True, True]}, "cutoffs"),
        ({"family": "gpt2", "n_layer": 1, "cutoffs": [300, 200], "vocab_size": 1000}, "cutoffs"),
        ({"family": "gpt2", "n_layer": 1, "cutoffs": [200], "vocab_size": 1000, "tie_projs": [False]}, "tie_projs"),
        ({"family": "gpt2", "n_layer": 1, "d_embed": 4, "div_val": 8, "vocab_size": 1000, "cutoffs": [100]}, "div_val"),
        ({"family": "transxl", "n_layer": 1, "d_model": 65, "n_head": [1]}, "d_model"),
        ({"family": "transxl", "n_layer": 1, "mem_len": -1}, "mem_len"),
        ({"family": "bert", "n_layer": 1}, "family"),
        ({"family": "gpt2"}, "n_layer"),
    ],
)
def test_impossible_configs_are_refused_with_the_field_named(data, field):
    with pytest.raises(ConfigError) as err:
        config_from_dict(data)
    msg = str(err.value)
    assert field in msg and "\n" not in msg


def test_malformed_json_is_one_line():
    with pytest.raises(ConfigError, match="malformed JSON"):
        config_from_json("{oops", source="x.json")


def test_vocab_only_clips_default_cutoffs():
    cfg = config_from_dict({"family": "gpt2", "n_layer": 1, "vocab_size": 30000})
    assert cfg.cutoffs == (19997,)
    assert cfg.tie_projs == (False, True)
    assert cfg.cluster_sizes() == [19997, 10003]


def test_scalar_per_layer_values_broadcast():
    cfg = config_from_dict({"family": "transxl", "n_layer": 3, "n_head": 4, "d_inner": 700})
    assert cfg.n_head == (4, 4, 4) and cfg.d_inner == (700, 700, 700)
    assert cfg.head_dim(0) == cfg.d_model // 4


from lts.space.config import LIMITS, short_repr  # noqa: E402


@pytest.mark.parametrize("field, data", [
    ("n_layer", {"family": "gpt2", "n_layer": LIMITS["n_layer"] + 1}),
    ("n_layer", {"family": "gpt2", "n_layer": 10**8}),  # used to build 10**8-long lists for minutes
    ("d_model", {"family": "gpt2", "n_layer": 1, "d_model": LIMITS["d_model"] * 2, "n_head": 1}),
    ("d_inner[0]", {"family": "gpt2", "n_layer": 1, "d_inner": LIMITS["d_inner"] + 1}),
    ("vocab_size", {"family": "gpt2", "n_layer": 1, "vocab_size": LIMITS["vocab_size"] + 1}),
    ("cutoffs", {"family": "gpt2", "n_layer": 1, "vocab_size": 10**6, "cutoffs": list(range(1, 18))}),
    ("tgt_len", {"family": "gpt2", "n_layer": 1, "tgt_len": LIMITS["tgt_len"] + 1}),
    ("mem_len", {"family": "transxl", "n_layer": 1, "mem_len": LIMITS["mem_len"] + 1}),
    ("n_head[0]", {"family": "transxl", "n_layer": 1, "d_model": 64, "d_head": 8, "n_head": 65}),
    ("family", {"family": ["gpt2"], "n_layer": 1}),
    ("family", {"family": {"a": 1}, "n_layer": 1}),
    ("ops[0][0]", {"family": "darts", "n_layer": 1, "ops": [["conv5000", "ffn"]]}),
    ("ops[0][0]", {"family": "darts", "n_layer": 1, "ops": [["attn\u00b2", "ffn"]]}),
])
def test_limits_and_types_are_refused_with_the_field_named(field, data):
    with pytest.raises(ConfigError) as err:
        config_from_dict(data)
    assert field in str(err.value) and "\n" not in str(err.value)


def test_configs_at_the_limits_are_valid():
    cfg = config_from_dict({"family": "gpt2", "n_layer": LIMITS["n_layer"], "d_model": LIMITS["d_model"],
                            "n_head": 1, "d_inner": LIMITS["d_inner"], "vocab_size": LIMITS["vocab_size"],
                            "tgt_len": LIMITS["tgt_len"]})
    assert cfg.n_layer == LIMITS["n_layer"]


def test_messages_stay_short_whatever_the_value():
    deep: list = []
    for _ in range(500):
        deep = [deep, deep]  # 2**500 leaves if printed in full
    assert len(short_repr(deep)) <= 60 and len(short_repr("x" * 10**6)) <= 60
    with pytest.raises(ConfigError) as err:
        config_from_dict({"family": "gpt2", "n_layer": deep})
    assert len(str(err.value)) < 200


def test_deep_and_huge_json_are_one_line():
    for text in ("[" * 100_000 + "]" * 100_000, '{"n_layer": 1' + "0" * 5000 + "}"):
        with pytest.raises(ConfigError, match="malformed JSON"):
            config_from_json(text, source="x.json")
