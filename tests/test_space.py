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
