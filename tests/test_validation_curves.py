"""Learning curves of validation runs: held-out loss at checkpoints, correlations at each, named recipes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from lts.cli import main
from lts.errors import LtsError
from lts.space.config import GPT2Config
from lts.store.db import Store
from lts.text.corpus import load_corpus
from lts.text.tokenizer import TokenizerSpec, prepare_tokens
from lts.validate.correlations import correlate, curve_correlations, rank_agreement, validation_curve
from lts.validate.recipe import DEFAULT_RECIPE, RECIPES, Recipe
from lts.validate.runner import ValidationRunner
from lts.validate.session import ValidationSettings, create_validation, get_validation, result_rows
from lts.validate.training import train

TINY_SPACE = {"family": "gpt2", "n_layer": {"min": 1, "max": 2}, "d_model": [16, 32], "d_embed": [16, 32],
              "div_val": [1], "n_head": [2], "d_inner": {"min": 32, "max": 64, "step": 32}}
CURVE_RECIPE = Recipe(steps=30, batch_size=8, seq_len=32, lr=3e-3, warmup_steps=3, eval_sequences=64, eval_every=10)


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    for i, doc in enumerate(load_corpus().documents[:2]):
        (d / f"book{i}.txt").write_text(doc.text[5000:45000])
    return d


@pytest.fixture(scope="module")
def byte_data(corpus_dir, tmp_path_factory):
    return prepare_tokens(load_corpus(corpus_dir), TokenizerSpec("byte", 256), tmp_path_factory.mktemp("cache"), 0.1)


def _cfg() -> GPT2Config:
    return GPT2Config(n_layer=2, d_model=32, d_embed=32, div_val=1, n_head=2, d_inner=64, vocab_size=256,
                      cutoffs=(), tie_projs=(False,), tgt_len=32)


def test_checkpoint_evaluations_leave_training_and_the_final_loss_bit_identical(byte_data):
    plain = train(_cfg(), byte_data.train, byte_data.valid, Recipe(**{**CURVE_RECIPE.__dict__, "eval_every": 0}))
    curved = train(_cfg(), byte_data.train, byte_data.valid, CURVE_RECIPE)
    assert plain.curve is None
    assert curved.valid_loss == plain.valid_loss and curved.train_loss == plain.train_loss
    assert [p["step"] for p in curved.curve] == [10, 20, 30]
    assert [p["tokens"] for p in curved.curve] == [10 * 8 * 32, 20 * 8 * 32, 30 * 8 * 32]
    assert curved.curve[-1]["valid_loss"] == curved.valid_loss
    losses = [p["valid_loss"] for p in curved.curve]
    assert losses[0] > losses[-1]  # it learns
    # a model trained for exactly 10 steps scores what the first checkpoint of a longer run scored
    # only when the schedule matches, so checkpoints are read as "this run at 10 steps", not a 10-step run
    assert CURVE_RECIPE.checkpoints() == [10, 20, 30]
    assert Recipe(steps=25, eval_every=10).checkpoints() == [10, 20, 25]
    assert Recipe(steps=0).checkpoints() == []


def test_curve_correlations_equal_correlate_at_every_checkpoint():
    rng = np.random.default_rng(0)
    rows = []
    for i in range(8):
        losses = rng.uniform(3, 5, size=3)
        rows.append({"arch_id": f"a{i}", "status": "done", "decoder_params": 1000 * (i + 1), "flops": float(8 - i),
                     "curve_json": json.dumps([{"step": s, "tokens": s * 4, "valid_loss": float(v)}
                                               for s, v in zip((5, 10, 15), losses)])})
    rows.append({"arch_id": "pending", "status": "pending", "decoder_params": 5, "flops": 1.0, "curve_json": None})
    curve = curve_correlations(rows, ["decoder_params", "flops"])
    assert [(r["step"], r["proxy"]) for r in curve] == [(s, p) for s in (5, 10, 15) for p in ("decoder_params", "flops")]
    for r in curve:
        k = (5, 10, 15).index(r["step"])
        ppl = [math.exp(json.loads(x["curve_json"])[k]["valid_loss"]) for x in rows[:8]]
        assert r["tokens"] == r["step"] * 4 and r["n"] == 8
        assert r["spearman"] == pytest.approx(stats.spearmanr([x[r["proxy"]] for x in rows[:8]],
                                                               [-v for v in ppl]).statistic)
        assert r["spearman_lo"] <= r["spearman"] <= r["spearman_hi"]
    # the last checkpoint is the run's own table when the final loss is the last curve point
    last = [{**x, "valid_ppl": math.exp(json.loads(x["curve_json"])[-1]["valid_loss"])} for x in rows[:8]]
    assert [r["spearman"] for r in curve if r["step"] == 15] == [c["spearman"] for c in correlate(last, ["decoder_params", "flops"])]


def test_rank_agreement_matches_architectures_by_id():
    a = [{"arch_id": k, "valid_ppl": v} for k, v in zip("abcd", (10, 20, 30, 40))]
    b = [{"arch_id": k, "valid_ppl": v} for k, v in zip("dcbaz", (41, 29, 21, 9, 1))]
    assert rank_agreement(a, b) == {"n": 4, "spearman": pytest.approx(1.0), "kendall": pytest.approx(1.0)}
    assert rank_agreement(a[:1], b)["spearman"] is None


def test_a_validation_stores_its_curves_and_the_cli_prints_them(corpus_dir, tmp_path, capsys):
    db = tmp_path / "v.db"
    s = Store(db)
    vid = create_validation(s, ValidationSettings(space=TINY_SPACE, n_archs=3, seed=1, corpus=str(corpus_dir),
                                                  tokenizer=TokenizerSpec("byte", 256), recipe=CURVE_RECIPE),
                            tmp_path / "cache")
    ValidationRunner(s, vid).run_to_end()
    rows = result_rows(s, vid)
    for r in rows:
        curve = json.loads(r["curve_json"])
        assert [p["step"] for p in curve] == [10, 20, 30] and curve[-1]["valid_loss"] == r["valid_loss"]
    table = validation_curve(s, vid)
    assert {r["step"] for r in table} == {10, 20, 30} and all(r["n"] == 3 for r in table)
    assert json.loads(get_validation(s, vid)["recipe_json"])["name"] == "lts-v1"  # Recipe() is lts-v1's fields

    assert main(["correlate", vid, "--curve", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "decoder_params" in out and "7680" in out  # 30 steps x 8 x 32 tokens
    assert main(["correlate", vid, "--curve", "--json", "--db", str(db)]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {(p["step"], p["proxy"]): p["spearman"] for p in printed} == {(r["step"], r["proxy"]): r["spearman"] for r in table}


def test_a_run_without_curves_says_so_in_one_line(corpus_dir, tmp_path, capsys):
    db = tmp_path / "v.db"
    s = Store(db)
    vid = create_validation(s, ValidationSettings(space=TINY_SPACE, n_archs=2, seed=1, corpus=str(corpus_dir),
                                                  tokenizer=TokenizerSpec("byte", 256),
                                                  recipe=Recipe(**{**CURVE_RECIPE.__dict__, "eval_every": 0})),
                            tmp_path / "cache")
    ValidationRunner(s, vid).run_to_end()
    assert main(["correlate", vid, "--curve", "--db", str(db)]) == 2
    assert "recorded no learning curves" in capsys.readouterr().err


def test_named_recipes_keep_old_figures_reproducible():
    assert RECIPES["lts-v1"] == Recipe(name="lts-v1")
    r = Recipe.named("lts-v1", steps=500, lr=None)
    assert r.steps == 500 and r.lr == RECIPES["lts-v1"].lr and r.name == "lts-v1"
    with pytest.raises(LtsError, match="unknown recipe 'nope'"):
        Recipe.named("nope")
    with pytest.raises(LtsError, match="eval_every"):
        Recipe(eval_every=-1)
    # an old run's recorded recipe (no name, no eval_every) still reads
    old = {k: v for k, v in RECIPES["lts-v1"].to_dict().items() if k not in ("name", "eval_every")}
    assert Recipe.from_dict(old).steps == 2000


def test_cells_sampling_spreads_over_size_depth_and_width():
    from lts.space.counts import decoder_params
    from lts.validate.candidates import choose, validation_space

    space = validation_space("gpt2", 2048, 64)
    size_only = choose(space, 16, 0, "stratified")
    cells = choose(space, 16, 0, "cells")
    assert choose(space, 16, 0, "cells") == cells  # seeded
    shapes = lambda cs: {(c.n_layer, c.d_model) for c in cs}  # noqa: E731
    assert len(shapes(cells)) > len(shapes(size_only))
    assert {c.n_layer for c in cells} == {1, 2, 3, 4} and {c.d_model for c in cells} == {64, 96, 128}
    # the size range is kept: the smallest and the largest of the pool both stay
    assert min(map(decoder_params, cells)) == min(map(decoder_params, size_only))
    assert max(map(decoder_params, cells)) == max(map(decoder_params, size_only))
    assert len({c.arch_id for c in cells}) == 16


def test_a_width_rule_scales_each_models_rate_and_only_that(byte_data, monkeypatch):
    r = Recipe(steps=100, lr=3e-3, warmup_steps=10, lr_width=128)
    assert r.peak_lr(64) == pytest.approx(6e-3) and r.peak_lr(128) == pytest.approx(3e-3)
    assert r.lr_at(50, 64) == pytest.approx(2 * r.lr_at(50, 128))
    assert Recipe(lr=3e-3).peak_lr(64) == 3e-3  # no rule: one rate for every width
    with pytest.raises(LtsError, match="lr_width"):
        Recipe(lr_width=-1)
    # training reads the rate of the model's width: AdamW's step sizes are the rule's
    import torch

    seen: list[float] = []
    real_step = torch.optim.AdamW.step

    def spy(self, *a, **k):
        seen.append(self.param_groups[0]["lr"])
        return real_step(self, *a, **k)

    monkeypatch.setattr(torch.optim.AdamW, "step", spy)
    rule = Recipe(steps=4, batch_size=4, seq_len=32, lr=1e-3, warmup_steps=1, eval_sequences=8, eval_every=0,
                  lr_width=64)
    train(_cfg(), byte_data.train, byte_data.valid, rule)  # d_model 32: twice the base rate
    assert seen == pytest.approx([rule.lr_at(s, 32) for s in range(4)])
    assert seen[0] == pytest.approx(2e-3)
    assert RECIPES["lts-v2"].lr_width and DEFAULT_RECIPE == "lts-v2"
