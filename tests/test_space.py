import json
import random

import pytest

from conftest import small_space
from lts.errors import ConfigError, LtsError
from lts.space.ranges import SearchSpace, load_space


@pytest.mark.parametrize("family", ["gpt2", "transxl"])
def test_sampling_is_seeded_and_inside_the_space(family):
    space = SearchSpace.default(family)
    a = [space.sample(random.Random(7)).arch_id for _ in range(3)]
    assert len(set(a)) == 1
    rng = random.Random(0)
    samples = [space.sample(rng) for _ in range(200)]
    for cfg in samples:
        space.check(cfg)
        assert all(cfg.d_model % h == 0 for h in cfg.n_head)
    # heterogeneous layers really occur, and the whole n_layer range is used
    assert any(len(set(c.d_inner)) > 1 for c in samples)
    assert {c.n_layer for c in samples} >= {2, 16}


@pytest.mark.parametrize("family", ["gpt2", "transxl"])
def test_mutation_and_crossover_stay_valid_and_seeded(family):
    space = small_space(family, n_head=[1, 2, 3, 4])  # 3 does not divide 16/32: repair must act
    rng = random.Random(3)
    pop = [space.sample(rng) for _ in range(20)]
    for i in range(200):
        child = space.mutate(pop[i % 20], rng)
        assert child.arch_id != pop[i % 20].arch_id
        space.check(child)
        mixed = space.crossover(pop[i % 20], pop[(i + 1) % 20], rng)
        space.check(mixed)
    r1, r2 = random.Random(5), random.Random(5)
    assert space.mutate(pop[0], r1) == space.mutate(pop[0], r2)
    assert space.crossover(pop[0], pop[1], r1) == space.crossover(pop[0], pop[1], r2)


def test_check_names_the_out_of_range_field():
    space = SearchSpace.default("gpt2")
    cfg = space.sample(random.Random(0))
    bad = cfg.replace(d_inner=tuple([4096] * cfg.n_layer))
    with pytest.raises(ConfigError, match=r"d_inner\[0\]=4096"):
        space.check(bad)


def test_space_files_json_and_yaml(tmp_path):
    spec = {"family": "gpt2", "n_layer": {"min": 2, "max": 4}, "d_model": [128], "vocab_size": 4096,
            "d_inner": {"min": 256, "max": 1024, "step": 128}}
    j = tmp_path / "s.json"
    j.write_text(json.dumps(spec))
    y = tmp_path / "s.yaml"
    y.write_text("family: gpt2\nn_layer: {min: 2, max: 4}\nd_model: [128]\nvocab_size: 4096\n"
                 "d_inner: {min: 256, max: 1024, step: 128}\n")
    for path in (j, y):
        space = load_space(path)
        cfg = space.sample(random.Random(1))
        assert cfg.vocab_size == 4096 and cfg.cutoffs == ()  # default cutoffs all beyond the vocabulary
        assert all(di % 128 == 0 for di in cfg.d_inner)
        assert space.name == "s"


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "malformed space file"),
        ('{"family": "gpt2", "d_model": [100], "n_head": [3]}', "no choice divides d_model=100"),
        ('{"family": "gpt2", "n_layers": [2]}', "unknown space field 'n_layers'"),
        ('{"family": "gpt2", "d_inner": {"min": 9, "max": 2}}', "d_inner"),
        ('{"family": "gpt2", "d_model": []}', "d_model"),
        ('{"family": "rnn"}', "family"),
        ('[1, 2]', "object"),
    ],
)
def test_bad_space_files_fail_with_one_line(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(LtsError) as err:
        load_space(path)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_missing_space_file():
    with pytest.raises(LtsError, match="neither a family"):
        load_space("nope.json")


def test_size_is_reported():
    assert SearchSpace.default("gpt2").log10_size() > 50


# -- limits, sizes without listing, and sampling under a decoder-parameter bound -----------------
import itertools  # noqa: E402
import time  # noqa: E402

from lts.space.counts import decoder_params  # noqa: E402
from lts.space.config import LIMITS  # noqa: E402
from lts.space.ranges import Dim  # noqa: E402


def _every_config(space):
    """All architectures of a tiny space, by brute force."""
    d = space.dims
    for d_model, n_layer, d_embed in itertools.product(d["d_model"].choices(), d["n_layer"].choices(),
                                                       d["d_embed"].choices()):
        layer = list(itertools.product(space._heads_for(d_model), d["d_inner"].choices()))
        for div_val in space._div_vals_for(d_embed):
            for layers in itertools.product(layer, repeat=n_layer):
                yield space.make(n_layer=n_layer, d_model=d_model, d_embed=d_embed, div_val=div_val,
                                 n_head=[h for h, _ in layers], d_inner=[i for _, i in layers])


TINY = {"n_layer": {"min": 1, "max": 3}, "d_model": [16, 24], "n_head": [1, 2, 3, 8], "d_embed": [8, 16],
        "d_inner": {"min": 8, "max": 20, "step": 6}}


@pytest.mark.parametrize("family", ["gpt2", "transxl"])
def test_size_and_parameter_range_match_brute_force(family):
    space = small_space(family, **TINY)
    every = list(_every_config(space))
    assert space.size() == len(every) == len({c.arch_id for c in every})
    counts = [decoder_params(c) for c in every]
    assert space.decoder_param_range() == (min(counts), max(counts))


def test_dim_queries_never_list_a_range():
    dim = Dim(lo=3, hi=10**6, step=7)
    assert (dim.min, dim.max, len(dim)) == (3, 3 + 7 * ((10**6 - 3) // 7), (10**6 - 3) // 7 + 1)
    assert dim.count_between(10, 30) == len([v for v in range(10, 31) if v in dim]) == 3
    assert dim.count_between(-5, 2) == 0 and dim.count_between(10**7, 10**8) == 0
    rng = random.Random(0)
    assert all(v in dim and 100 <= v <= 200 for v in (dim.sample_between(rng, 100, 200) for _ in range(50)))
    listed = Dim(values=(2, 5, 9))
    assert listed.count_between(3, 9) == 2 and listed.max_gap == 4 and 5 in listed and 4 not in listed


def test_space_queries_are_fast_at_the_limits():
    start = time.perf_counter()
    space = SearchSpace.from_dict({
        "family": "gpt2", "n_layer": {"min": 1, "max": LIMITS["n_layer"]},
        "d_model": {"min": 16, "max": LIMITS["d_model"], "step": 16}, "n_head": {"min": 2, "max": 4096},
        "d_inner": {"min": 1, "max": LIMITS["d_inner"]}, "d_embed": {"min": 16, "max": LIMITS["d_embed"], "step": 16}})
    assert space.log10_size() > 1000
    from lts.search.runner import max_decoder_params

    assert max_decoder_params(space) == space.decoder_param_range()[1]
    assert time.perf_counter() - start < 20  # seconds on a busy 2-core machine; listing would take hours


@pytest.mark.parametrize("spec, message", [
    ({"d_model": {"min": 8, "max": 10**15}}, "over the limit 65,536"),
    ({"n_layer": {"min": 1, "max": 10**8}}, "over the limit 256"),
    ({"d_model": {"min": 8, "max": 65536}, "n_head": [1]}, "choices is over the limit of 4,096"),
    ({"cutoffs": 5}, "cutoffs"),
    ({"cutoffs": "a"}, "cutoffs"),
    ({"vocab_size": "x"}, "vocab_size"),
    ({"family": ["gpt2"]}, "family"),
    ({"name": {"a": 1}}, "name"),
])
def test_space_fields_are_typed_and_bounded(spec, message):
    with pytest.raises(ConfigError) as err:
        SearchSpace.from_dict({"family": "gpt2", **spec})
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("family, over", [
    ("gpt2", {}), ("transxl", {}),
    ("transxl", {"d_head": 8}),  # the attention term then depends on n_head
    ("gpt2", {"d_inner": [8, 40, 64]}),  # widths from a list, with gaps
])
def test_sample_within_stays_inside_the_bound(family, over):
    space = small_space(family, n_layer={"min": 1, "max": 6}, **over)
    fewest, most = space.decoder_param_range()
    rng = random.Random(4)
    for lo, hi in [(int(0.95 * most), None), (None, fewest + (most - fewest) // 50),
                   (fewest + (most - fewest) // 3, fewest + (most - fewest) // 3 + (most - fewest) // 20)]:
        samples = [space.sample_within(rng, lo, hi) for _ in range(40)]
        assert all(s is not None for s in samples)
        for cfg in samples:
            space.check(cfg)
            assert (lo or 0) <= decoder_params(cfg) <= (hi or most)
        if "d_inner" not in over:  # a 3-value list leaves only a few counts near the top
            assert len({decoder_params(c) for c in samples}) > 5  # spread, not piled at one end
    a, b = random.Random(9), random.Random(9)
    assert space.sample_within(a, int(0.9 * most), None) == space.sample_within(b, int(0.9 * most), None)


def test_within_repairs_with_few_changes():
    space = small_space("gpt2", n_layer={"min": 1, "max": 6})
    fewest, most = space.decoder_param_range()
    rng = random.Random(2)
    lo = int(0.6 * most)
    for _ in range(40):
        cfg = space.sample(rng)
        fixed = space.within(cfg, rng, lo, None)
        space.check(fixed)
        assert decoder_params(fixed) >= lo
        if decoder_params(cfg) >= lo:
            assert fixed is cfg
        assert (fixed.d_embed, fixed.div_val) == (cfg.d_embed, cfg.div_val)
    assert not space.can_reach(most + 1, None) and space.can_reach(None, fewest)
