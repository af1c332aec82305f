"""lts's families as transformers models: exact against lts's own, saved and loaded, generating, training.

Everything runs the real transformers library (nothing mocked). Random configs are small (vocabularies
of hundreds, widths up to 128) so that 100 of each family build, save and load in seconds.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lts.errors import ConfigError
from lts.models import build_model
from lts.models.hf import hf_model, lts_config, save_folder, stock_gpt2, why_not_stock_gpt2
from lts.space.config import DARTS_PLAIN_OPS, DartsConfig, GPT2Config, TransXLConfig
from lts.space.counts import decoder_params

transformers = pytest.importorskip("transformers")
from transformers import AutoConfig, AutoModelForCausalLM  # noqa: E402

transformers.utils.logging.disable_progress_bar()

REPO = Path(__file__).resolve().parents[1]


def _cutoffs(rng: random.Random, vocab: int) -> list[int]:
    n = rng.choice([0, 0, 1, 2, 3])
    return sorted(rng.sample(range(10, vocab - 1), n))


def random_gpt2(rng: random.Random) -> GPT2Config:
    n_layer, d_model = rng.randint(1, 4), rng.choice([32, 64, 96, 128])
    vocab = rng.randint(60, 600)
    cutoffs = _cutoffs(rng, vocab)
    div_val = rng.choice([1, 1, 2, 4]) if cutoffs else 1
    d_embed = rng.choice([d_model, d_model, 32, 64])
    heads = [h for h in (1, 2, 4, 8) if d_model % h == 0]
    return GPT2Config(n_layer=n_layer, d_model=d_model, d_embed=d_embed, div_val=div_val,
                      n_head=[rng.choice(heads) for _ in range(n_layer)],
                      d_inner=[rng.randint(8, 300) for _ in range(n_layer)], vocab_size=vocab, cutoffs=cutoffs,
                      tie_weight=rng.random() < 0.8, tie_projs=[rng.random() < 0.5 for _ in range(len(cutoffs) + 1)],
                      tgt_len=rng.randint(16, 64))


def random_transxl(rng: random.Random) -> TransXLConfig:
    g = RANDOM["gpt2"](rng)
    d_head = rng.choice([-1, -1, 8, 16])
    return TransXLConfig(**{k: v for k, v in g.to_dict().items() if k != "family"},
                         mem_len=rng.choice([0, 8, 32]), d_head=d_head)


def random_darts(rng: random.Random) -> DartsConfig:
    n_split = rng.choice([2, 4])
    d_model = n_split * rng.choice([8, 16, 32])
    ops = ["attn1", "attn2", "conv3", "lightconv3", "dynconv2", *DARTS_PLAIN_OPS]
    n_layer = rng.randint(1, 3)
    return DartsConfig(n_layer=n_layer, d_model=d_model, n_split=n_split, vocab_size=rng.randint(60, 600),
                       ops=[[rng.choice(ops) for _ in range(n_split)] for _ in range(n_layer)],
                       tgt_len=rng.randint(16, 64), ffn_mult=rng.choice([1, 2, 4]), conv_heads=rng.choice([1, 2]))


def _valid(make):
    """``make``, drawn again where it drew a combination lts refuses (a cluster left 0 wide, ...)."""
    def draw(rng: random.Random):
        while True:
            try:
                return make(rng)
            except ConfigError:
                continue
    return draw


RANDOM = {"gpt2": _valid(random_gpt2), "transxl": _valid(random_transxl), "darts": _valid(random_darts)}


def _lts_model(cfg, seed: int) -> torch.nn.Module:
    """lts's model with every parameter random (biases and LayerNorms too, so nothing cancels by luck)."""
    model = build_model(cfg, seed=seed).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    return model


def _lts_logits(model, cfg, x, mems=None):
    return model(x, mems=mems) if cfg.family == "transxl" else (model(x), None)


@pytest.mark.parametrize("family", ["gpt2", "transxl", "darts"])
def test_100_random_configs_saved_and_loaded_give_lts_logits_and_decoder_params(family, tmp_path):
    rng = random.Random(f"hf-{family}")
    for i in range(100):
        cfg = RANDOM[family](rng)
        model = _lts_model(cfg, seed=i)
        folder = tmp_path / str(i)
        save_folder(cfg, folder, weights=model)
        loaded = AutoModelForCausalLM.from_pretrained(folder).eval()
        assert type(loaded).__name__ == {"gpt2": "LtsGPT2ForCausalLM", "transxl": "LtsTransXLForCausalLM",
                                         "darts": "LtsDartsForCausalLM"}[family]
        assert lts_config(loaded.config) == cfg, i
        assert loaded.num_parameters(exclude_embeddings=True) == decoder_params(cfg), (i, cfg)
        assert loaded.num_parameters() == sum({id(p): p.numel() for p in model.parameters()}.values())
        x = torch.randint(0, cfg.vocab_size, (2, min(cfg.tgt_len, 12)), generator=torch.Generator().manual_seed(i))
        with torch.no_grad():
            ref, mems = _lts_logits(model, cfg, x)
            out = loaded(x, use_cache=True)
            torch.testing.assert_close(out.logits, ref, atol=1e-5, rtol=0, msg=f"config {i}: {cfg}")
            if family == "transxl" and cfg.mem_len:  # a second segment through the memory
                ref2, _ = model(x, mems=mems)
                torch.testing.assert_close(loaded(x, cache=out.cache).logits, ref2, atol=1e-5, rtol=0)


@pytest.mark.parametrize("family", ["gpt2", "transxl", "darts"])
def test_a_config_only_folder_builds_the_architecture_fresh(family, tmp_path):
    cfg = RANDOM[family](random.Random(3))
    files = {p.name for p in save_folder(cfg, tmp_path)}
    assert {"config.json", "generation_config.json", "hf_modeling.py", "hf_configs.py"} <= files
    assert "model.safetensors" not in files
    save_folder(cfg, tmp_path, weights=_lts_model(cfg, 1))
    save_folder(cfg, tmp_path)  # config only again: the earlier weights must not stay to be loaded
    assert not (tmp_path / "model.safetensors").exists()
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(tmp_path))
    assert model.num_parameters(exclude_embeddings=True) == decoder_params(cfg)
    names = {n: p.shape for n, p in model.transformer.named_parameters()}
    assert names == {n: p.shape for n, p in build_model(cfg, device="meta").named_parameters()}


def _lengths_seen(model) -> list[int]:
    seen: list[int] = []
    model.register_forward_pre_hook(lambda m, args, kwargs: seen.append(kwargs["input_ids"].shape[1]),
                                    with_kwargs=True)
    return seen


@pytest.mark.parametrize("family, cached", [("gpt2", True), ("transxl", True), ("darts", False)])
def test_greedy_generation_is_the_same_with_and_without_the_cache(family, cached):
    rng = random.Random(7)
    cfg = RANDOM[family](rng)
    if family == "transxl":
        cfg = cfg.replace(mem_len=32)  # the memory holds the whole 5 + 12 tokens: exact
    if family != "transxl":
        cfg = cfg.replace(tgt_len=64)
    model = hf_model(cfg, _lts_model(cfg, 0))
    prompt = torch.randint(0, cfg.vocab_size, (3, 5), generator=torch.Generator().manual_seed(1))
    seen = _lengths_seen(model)
    with_cache = model.generate(prompt, max_new_tokens=12, do_sample=False, use_cache=True)
    steps_with, seen[:] = list(seen), []
    without = model.generate(prompt, max_new_tokens=12, do_sample=False, use_cache=False)
    assert with_cache.shape == (3, 17)
    assert torch.equal(with_cache, without)
    assert seen == list(range(5, 17))  # without a cache every step reads the whole sequence
    assert steps_with == ([5] + [1] * 11 if cached else list(range(5, 17)))
    # beam search reorders the cache (the XL memory too) between steps
    beams = [model.generate(prompt, max_new_tokens=6, num_beams=3, do_sample=False, use_cache=c) for c in (True, False)]
    assert torch.equal(*beams)


def test_gpt2_prompt_fed_in_chunks_through_the_cache_gives_the_full_pass_logits():
    from transformers.cache_utils import DynamicCache

    cfg = RANDOM["gpt2"](random.Random(13)).replace(tgt_len=64)
    model = hf_model(cfg, _lts_model(cfg, 5))
    x = torch.randint(0, cfg.vocab_size, (2, 20), generator=torch.Generator().manual_seed(3))
    cache = DynamicCache()
    with torch.no_grad():
        parts = [model(x[:, a:b], cache=cache, use_cache=True).logits for a, b in ((0, 7), (7, 8), (8, 20))]
        torch.testing.assert_close(torch.cat(parts, dim=1), model(x, use_cache=False).logits, atol=1e-5, rtol=0)


def test_gpt2_left_padded_batch_generates_what_each_prompt_generates_alone():
    cfg = RANDOM['gpt2'](random.Random(11)).replace(tgt_len=64)
    model = hf_model(cfg, _lts_model(cfg, 2))
    a = torch.randint(0, cfg.vocab_size, (1, 6), generator=torch.Generator().manual_seed(2))
    b = a[:, 3:]
    batch = torch.cat([a, torch.cat([torch.zeros(1, 3, dtype=torch.long), b], dim=1)])
    mask = torch.tensor([[1] * 6, [0, 0, 0, 1, 1, 1]])
    together = model.generate(batch, attention_mask=mask, max_new_tokens=8, do_sample=False, pad_token_id=0)
    alone_a = model.generate(a, max_new_tokens=8, do_sample=False)
    alone_b = model.generate(b, max_new_tokens=8, do_sample=False)
    assert torch.equal(together[0, 6:], alone_a[0, 6:])
    assert torch.equal(together[1, 6:], alone_b[0, 3:])


def test_labels_follow_transformers_convention():
    cfg = RANDOM['gpt2'](random.Random(5))
    model = hf_model(cfg, _lts_model(cfg, 1))
    x = torch.randint(0, cfg.vocab_size, (2, 10), generator=torch.Generator().manual_seed(0))
    labels = x.clone()
    labels[0, 4:7] = -100
    out = model(x, labels=labels)
    logits, target = out.logits[:, :-1].reshape(-1, cfg.vocab_size), labels[:, 1:].reshape(-1)
    expected = torch.nn.functional.cross_entropy(logits, target, ignore_index=-100)
    torch.testing.assert_close(out.loss, expected)
    out.loss.backward()
    assert all(p.grad is not None for p in model.transformer.layers.parameters())


def test_inputs_past_the_learned_positions_are_refused_in_one_line():
    cfg = RANDOM['gpt2'](random.Random(5)).replace(tgt_len=16)
    model = hf_model(cfg)
    with pytest.raises(ValueError, match="tgt_len"):
        model(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(ValueError, match="learned positions"):
        model.generate(torch.zeros(1, 10, dtype=torch.long), max_new_tokens=10, do_sample=False)


def test_trainer_lowers_the_loss_on_the_shipped_corpus(tmp_path):
    pytest.importorskip("accelerate")
    from transformers import Trainer, TrainingArguments

    from lts.text.corpus import load_corpus

    text = load_corpus().documents[0].text[:200_000].encode("utf-8")
    ids = torch.tensor(list(text), dtype=torch.long)
    T = 32
    windows = [ids[i:i + T] for i in range(0, len(ids) - T, T)][:2000]
    data = [{"input_ids": w, "labels": w} for w in windows]
    cfg = GPT2Config(n_layer=2, d_model=64, d_embed=64, n_head=[2, 4], d_inner=[128, 64], vocab_size=256,
                     cutoffs=[64], tie_projs=[False, True], tgt_len=T)
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model("lts_gpt2", **{
        k: v for k, v in cfg.to_dict().items() if k != "family"}))
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=40, per_device_train_batch_size=16,
                             learning_rate=3e-3, logging_steps=5, report_to=[], save_strategy="no",
                             use_cpu=True, seed=0, disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=data)
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 8
    assert losses[-1] < 0.8 * losses[0], losses  # bytes of English: from ~5.5 nats towards ~3


def test_remote_code_folder_loads_where_lts_is_not_installed(tmp_path):
    cfg = RANDOM['transxl'](random.Random(9)).replace(mem_len=8)
    model = _lts_model(cfg, 4)
    save_folder(cfg, tmp_path / "m", weights=model)
    x = torch.randint(0, cfg.vocab_size, (1, 6), generator=torch.Generator().manual_seed(0))
    code = (
        "import sys; sys.modules['lts'] = None\n"  # import lts now raises ImportError
        "import torch\nfrom transformers import AutoModelForCausalLM\n"
        f"m = AutoModelForCausalLM.from_pretrained({str(tmp_path / 'm')!r}, trust_remote_code=True).eval()\n"
        f"x = torch.tensor({x.tolist()})\n"
        f"torch.save(m(x).logits, {str(tmp_path / 'out.pt')!r})\n"
        "print(type(m).__module__.split('.')[0])\n"
    )
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "transformers_modules"
    with torch.no_grad():
        torch.testing.assert_close(torch.load(tmp_path / "out.pt"), model(x)[0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("order", ["lts first", "transformers first"])
def test_importing_lts_registers_the_auto_classes_and_costs_no_transformers_import(order, tmp_path):
    cfg = RANDOM['darts'](random.Random(2))
    save_folder(cfg, tmp_path / "m", weights=_lts_model(cfg, 0))
    first, second = ("import lts", "import transformers") if order == "lts first" else ("import transformers", "import lts")
    code = (
        f"import sys\n{first}\n"
        "before = 'transformers' in sys.modules\n"
        f"{second}\n"
        "from transformers import AutoConfig, AutoModelForCausalLM\n"
        f"m = AutoModelForCausalLM.from_pretrained({str(tmp_path / 'm')!r})\n"
        "print(before, type(m).__module__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    before, module = out.stdout.split()[-2:]
    assert module == "lts.models.hf_modeling"  # lts's registered class, not the folder's remote code
    assert before == ("False" if order == "lts first" else "True")


# -- stock GPT-2 ------------------------------------------------------------------------------
HOMOGENEOUS = GPT2Config(n_layer=2, d_model=64, d_embed=64, n_head=4, d_inner=128, vocab_size=300, cutoffs=[],
                         tie_projs=[False], tgt_len=32)


@pytest.mark.parametrize("bias", ["zero", "constant"])
def test_homogeneous_gpt2_converts_to_stock_gpt2_with_the_same_probabilities(bias):
    model = _lts_model(HOMOGENEOUS, 3)
    with torch.no_grad():
        model.crit.out_layers[0].bias.fill_(0.0 if bias == "zero" else 1.7)
    stock = stock_gpt2(HOMOGENEOUS, model)
    assert type(stock).__name__ == "GPT2LMHeadModel"
    x = torch.randint(0, 300, (2, 20), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(torch.log_softmax(stock(x).logits, -1), model(x), atol=1e-5, rtol=0)
    assert stock.num_parameters(exclude_embeddings=True) == decoder_params(HOMOGENEOUS)


def test_stock_gpt2_refuses_an_output_bias_it_cannot_carry():
    model = _lts_model(HOMOGENEOUS, 3)  # random biases
    with pytest.raises(Exception, match="output bias varies"):
        stock_gpt2(HOMOGENEOUS, model)


@pytest.mark.parametrize("change, reason", [
    ({"n_head": (4, 2)}, "n_head"), ({"cutoffs": (100,), "tie_projs": (False, True)}, "cutoffs"),
    ({"d_embed": 32}, "d_embed"), ({"tie_weight": False}, "tied"),
])
def test_stock_gpt2_refusals_name_the_reason(change, reason):
    why = why_not_stock_gpt2(HOMOGENEOUS.replace(**change))
    assert why and reason in why and "\n" not in why
    assert why_not_stock_gpt2(TransXLConfig(n_layer=1)).startswith("only gpt2")


def test_resizing_the_embedding_is_refused_in_one_line():
    model = hf_model(RANDOM["gpt2"](random.Random(1)))
    with pytest.raises(ValueError, match="cannot resize"):
        model.resize_token_embeddings(1000)


def test_config_questions_import_neither_torch_nor_transformers():
    """The Architecture page asks whether a stock GPT-2 twin exists before it offers that download."""
    code = ("import sys; import lts.export; from lts.models.hf import why_not_stock_gpt2; "
            "from lts.space.config import GPT2Config; "
            "ok = GPT2Config(n_layer=2, d_model=64, d_embed=64, n_head=4, d_inner=256, vocab_size=500, "
            "cutoffs=[], tie_projs=[False]); "
            "assert why_not_stock_gpt2(ok) is None and 'n_head' in why_not_stock_gpt2(ok.replace(n_head=(4, 2))); "
            "print('torch' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


def test_a_registration_that_fails_warns_and_leaves_transformers_working(monkeypatch):
    import types

    import lts

    broken = types.ModuleType("lts.models.hf_auto")

    def fail() -> None:
        raise RuntimeError("an incompatible transformers")

    broken.register = broken.register_configs = fail
    monkeypatch.setitem(sys.modules, "lts.models.hf_auto", broken)
    monkeypatch.setattr(lts.models, "hf_auto", broken, raising=False)
    with pytest.warns(UserWarning, match="could not register its models with transformers.*incompatible"):
        lts._register(model_classes=True)
