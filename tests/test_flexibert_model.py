"""FlexiBERT: configs and their errors, the space, the builder (every shipped record, every operation), counts."""

import gzip
import json
import math
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import fft as sfft

from lts.errors import ConfigError, LtsError
from lts.flexibert.config import config_from_dict
from lts.flexibert.model import (LinearTransform, MixedConvAttention, SelfAttention, build_flexibert,
                                 count_parameters, corrupt, dct_matrix)
from lts.flexibert.params import encoder_params, published_count, total_params
from lts.flexibert.records import SHIPPED_RECORDS, load_published, load_records
from lts.flexibert.space import FlexiBertSpace

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def layer(op="SA", param="SDP", heads=2, ffd=512, nff=1) -> dict:
    return {"operation_type": op, "operation_parameter": param, "num_operation_heads": heads,
            "feed_forward_dimension": ffd, "num_feed_forward": nff}


@pytest.fixture(scope="module")
def records():
    return load_records()


# -- the shipped half ----------------------------------------------------------------------
def test_every_shipped_record_builds_and_counts_as_the_analytic_formula(records):
    assert len(records) == 250 and len({r.id for r in records}) == 250
    space = FlexiBertSpace.default()
    for r in records:
        space.check(r.config)
        counts = count_parameters(build_flexibert(r.config, device="meta"))
        assert counts == {"total_params": total_params(r.config), "encoder_params": encoder_params(r.config)}, r.id


def test_a_sample_of_shipped_records_builds_with_weights_and_runs(records):
    for r in random.Random(0).sample(records, 8):
        model = build_flexibert(r.config, seed=0)
        with torch.no_grad():
            out = model(torch.randint(1000, 1256, (2, 16), generator=torch.Generator().manual_seed(r.id)))
        assert out.shape == (2, 16, r.config.hidden_size) and torch.isfinite(out).all(), r.id


def test_the_published_parameter_column_is_reproduced_under_electras_defaults(records):
    published = load_published()
    assert {r.id for r in records} == set(published)
    assert all(published_count(r.config) == published[r.id]["Number of Parameters"] for r in records)
    # ... and the records as specified differ from it whenever hidden size or an FFN width is not 256/1024.
    differs = [r for r in records if r.config.hidden_size != 256
               or any(l.feed_forward_dimension != 1024 for l in r.config.layers)]
    assert differs and all(total_params(r.config) != published[r.id]["Number of Parameters"] for r in differs)


def test_parameter_count_by_hand():
    # hidden 128 (no embedding projection): embeddings (30522 + 512 + 2) * 128 + LayerNorm 256;
    # SA-WMA, 2 heads: Q, K, V 3 * (128*128 + 128), W 128*128, output 128*128 + 128 + LayerNorm 256;
    # FFN 2 x 512: 128*512 + 512, 512*512 + 512, 512*128 + 128, LayerNorm 256;
    # DSC-5, 4 heads: 2 attention heads of 32 (width 64): Q, K, V 3 * (128*64 + 64); depthwise 128*5,
    # pointwise 128*64, bias 64; kernel 64 -> 2*5: 64*10 + 10; values 128*64 + 64; output 128*128 + 128 + 256;
    # FFN 1 x 1024: 128*1024 + 1024, 1024*128 + 128, LayerNorm 256.
    cfg = config_from_dict({"hidden_size": 128, "encoder_layers": [layer("SA", "WMA", 2, 512, 2),
                                                                     layer("DSC", 5, 4, 1024, 1)]})
    emb = (30522 + 512 + 2) * 128 + 256
    sa = 3 * (128 * 128 + 128) + 128 * 128 + (128 * 128 + 128 + 256)
    ffn0 = (128 * 512 + 512) + (512 * 512 + 512) + (512 * 128 + 128) + 256
    dsc = 3 * (128 * 64 + 64) + 128 * 5 + 128 * 64 + 64 + (64 * 10 + 10) + (128 * 64 + 64) + (128 * 128 + 128 + 256)
    ffn1 = (128 * 1024 + 1024) + (1024 * 128 + 128) + 256
    assert encoder_params(cfg) == sa + ffn0 + dsc + ffn1
    assert total_params(cfg) == emb + sa + ffn0 + dsc + ffn1
    # hidden 256 adds the 128 -> 256 projection; an LT layer has only its input projection.
    lt = config_from_dict({"hidden_size": 256, "encoder_layers": [layer("LT", "DFT", 4, 512, 1)]})
    assert total_params(lt) == (30522 + 514) * 128 + 256 + (128 * 256 + 256) + (256 * 256 + 256) + \
        (256 * 512 + 512) + (512 * 256 + 256) + 512


# -- every operation ------------------------------------------------------------------------
OPERATIONS = [("SA", "SDP"), ("SA", "WMA"), ("LT", "DFT"), ("LT", "DCT"), ("DSC", 5), ("DSC", 9)]


@pytest.mark.parametrize("op,param", OPERATIONS)
@pytest.mark.parametrize("d,heads", [(128, 2), (256, 4), (16, 4)])
def test_each_operation_keeps_the_shape(op, param, d, heads):
    cfg = config_from_dict({"hidden_size": d, "encoder_layers": [layer(op, param, heads, 64, 3)]})
    model = build_flexibert(cfg, seed=1)
    x = torch.randn(3, 11, d, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = model.layers[0].operation(x)
        out = model(torch.randint(1, 500, (3, 11), generator=torch.Generator().manual_seed(1)))
    assert y.shape == x.shape and out.shape == (3, 11, d)
    assert torch.isfinite(y).all() and torch.isfinite(out).all()


def test_fourier_and_cosine_mixing_equal_numpy_and_scipy():
    x = torch.randn(2, 7, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    for kind in ("DFT", "DCT"):
        op = LinearTransform(8, 2, kind).double()
        with torch.no_grad():
            op.input.weight.copy_(torch.eye(8))
            op.input.bias.zero_()
            y = op(x).numpy()
        heads = x.numpy().reshape(2, 7, 2, 4)  # per head: the 2-D transform over (positions, 4 channels)
        want = (np.fft.fft2(heads, axes=(1, 3)).real if kind == "DFT"
                else sfft.dctn(heads, type=2, axes=(1, 3)))
        np.testing.assert_allclose(y, want.reshape(2, 7, 8), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(dct_matrix(5, torch.float64).numpy(), sfft.dct(np.eye(5), type=2, axis=0), atol=1e-12)


def test_weighted_multiplicative_attention_scores_q_w_k():
    torch.manual_seed(0)
    op = SelfAttention(8, 2, weighted=True).double()
    x = torch.randn(1, 5, 8, dtype=torch.float64)
    with torch.no_grad():
        q, k, v = op.weight(op.query(x)), op.key(x), op.value(x)
        heads = []
        for h in range(2):
            s = slice(4 * h, 4 * h + 4)
            heads.append(torch.softmax(q[0, :, s] @ k[0, :, s].T / 2.0, -1) @ v[0, :, s])
        want = op.output.norm(op.output.dense(torch.cat(heads, -1)) + x[0])
        torch.testing.assert_close(op(x)[0], want)


def test_mixed_conv_attention_equals_a_loop_over_positions_and_heads():
    torch.manual_seed(0)
    d, heads, k, T = 8, 4, 3, 6
    op = MixedConvAttention(d, heads, k).double()
    x = torch.randn(2, T, d, dtype=torch.float64)
    with torch.no_grad():
        got = op(x)
        half, w = heads // 2, d // heads
        q, key, val = op.query(x), op.key(x), op.value(x)
        # depthwise over positions ('same' zero padding), then pointwise, then the shared bias
        xp = F.pad(x, (0, 0, 1, 1))
        dw = torch.stack([sum(xp[:, t + j] * op.depthwise.weight[:, 0, j] for j in range(k)) for t in range(T)], 1)
        span = dw @ op.pointwise.weight[:, :, 0].T + op.conv_bias
        kern = op.conv_kernel(span * q)
        u = F.pad(op.conv_values(x), (0, 0, 1, 1))
        out = torch.zeros(2, T, d, dtype=torch.float64)
        for b in range(2):
            for h in range(half):
                s = slice(w * h, w * h + w)
                att = torch.softmax(q[b, :, s] @ key[b, :, s].T / math.sqrt(w), -1) @ val[b, :, s]
                out[b, :, s] = att
                for t in range(T):
                    weights = torch.softmax(kern[b, t, h * k:(h + 1) * k], -1)
                    out[b, t, half * w + w * h: half * w + w * h + w] = sum(weights[j] * u[b, t + j, s] for j in range(k))
        want = op.output.norm(op.output.dense(out) + x)
    torch.testing.assert_close(got, want)


def test_build_is_seeded_and_initialised_as_electra():
    cfg = config_from_dict({"hidden_size": 128, "encoder_layers": [layer("DSC", 9, 2, 512, 3), layer("LT", "DCT")]})
    a, b, c = build_flexibert(cfg, seed=0), build_flexibert(cfg, seed=0), build_flexibert(cfg, seed=1)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa) and not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert torch.all(a.embeddings.word.weight[0] == 0)  # the padding row
    w = a.layers[0].ffn.hidden[1].weight.detach()
    assert abs(float(w.std()) - 0.02) < 0.001 and torch.all(a.layers[0].ffn.hidden[1].bias == 0)
    assert torch.all(a.layers[1].ffn.norm.weight == 1)


def test_corruption_is_seeded_and_labels_what_changed():
    tokens = torch.arange(200).reshape(10, 20) % 37
    c1, r1 = corrupt(tokens)
    c2, r2 = corrupt(tokens)
    assert torch.equal(c1, c2) and torch.equal(r1, r2)
    assert torch.equal(r1, c1 != tokens)
    assert 0 < int(r1.sum()) <= 30  # at most 15% of the 200 positions


# -- configs, space, files: one-line errors naming the field --------------------------------
@pytest.mark.parametrize("change,message", [
    ({"operation_type": "XX"}, "layer 0: operation_type must be one of SA, LT, DSC"),
    ({"operation_parameter": "DFT"}, "layer 0: operation_parameter for SA must be SDP or WMA"),
    ({"operation_type": "LT", "operation_parameter": "FFT"}, "operation_parameter for LT must be DFT or DCT"),
    ({"operation_type": "DSC", "operation_parameter": 4}, "kernel size) must be odd, got 4"),
    ({"operation_type": "DSC", "operation_parameter": 5, "num_operation_heads": 1}, "must be even for DSC"),
    ({"num_operation_heads": 3}, "num_operation_heads=3 does not divide hidden_size=128"),
    ({"feed_forward_dimension": 0}, "feed_forward_dimension must be >= 1, got 0"),
    ({"num_feed_forward": True}, "num_feed_forward must be an integer"),
    ({"num_heads": 2}, "layer 0: unknown key 'num_heads'"),
])
def test_bad_layers_are_refused_naming_the_field(change, message):
    with pytest.raises(ConfigError, match="^cfg: " + message.replace("(", r"\(").replace(")", r"\)")
                       if message.startswith("layer") else message.replace("(", r"\(").replace(")", r"\)")):
        config_from_dict({"hidden_size": 128, "encoder_layers": [{**layer(), **change}]}, "cfg")


def test_bad_architectures_and_space_membership():
    with pytest.raises(ConfigError, match="hidden_size is missing"):
        config_from_dict({"encoder_layers": [layer()]})
    with pytest.raises(ConfigError, match="encoder_layers must be a non-empty list"):
        config_from_dict({"hidden_size": 128, "encoder_layers": []})
    with pytest.raises(ConfigError, match="layer 0: num_feed_forward is missing"):
        config_from_dict({"hidden_size": 128, "encoder_layers": [{k: v for k, v in layer().items() if k != "num_feed_forward"}]})
    space = FlexiBertSpace.default()
    odd = config_from_dict({"hidden_size": 192, "encoder_layers": [layer(heads=3, ffd=700)] * 3})
    with pytest.raises(ConfigError, match=r"hidden_size=192 is outside the space \[128, 256\]"):
        space.check(odd)
    with pytest.raises(ConfigError, match=r"layer 1: operation_parameter=7 is outside the space for DSC \[5, 9\]"):
        space.check(config_from_dict({"hidden_size": 128, "encoder_layers": [layer(), layer("DSC", 7)]}))
    with pytest.raises(ConfigError, match=r"layer 0: feed_forward_dimension=700 is outside the space"):
        space.check(config_from_dict({"hidden_size": 128, "encoder_layers": [layer(ffd=700)] * 2}))
    assert build_flexibert(odd, device="meta")  # outside the space, yet well formed: it builds


def test_space_size_and_seeded_samples():
    space = FlexiBertSpace.default()
    per_layer = 6 * 2 * 2 * 2  # (SA|LT|DSC) x 2 parameters, heads, FFN width, FFN depth
    assert space.layer_choices() == per_layer and space.size() == 2 * (per_layer ** 2 + per_layer ** 4)
    a = [space.sample(random.Random(5)) for _ in range(3)]
    b = [space.sample(random.Random(5)) for _ in range(3)]
    assert a == b and all(space.contains(c) for c in a)
    cfg = a[0]
    assert config_from_dict(cfg.to_dict()) == cfg and cfg.arch_id == config_from_dict(cfg.to_dict()).arch_id


def test_record_files_json_and_gz_and_their_errors(tmp_path, records):
    raw = gzip.decompress(SHIPPED_RECORDS.read_bytes())
    (tmp_path / "a.json").write_bytes(raw)
    assert [r.id for r in load_records(tmp_path / "a.json")] == [r.id for r in records]
    data = json.loads(raw)[:3]

    def bad(recs, name="b.json"):
        (tmp_path / name).write_text(json.dumps(recs))
        with pytest.raises(LtsError) as err:
            load_records(tmp_path / name)
        assert "\n" not in str(err.value)
        return str(err.value)

    assert "record 1 repeats id" in bad([data[0], data[0]])
    broken = json.loads(json.dumps(data[1]))
    broken["hparams"]["model_hparam_overrides"]["nas_config"]["encoder_layers"][0]["operation_type"] = "CNN"
    assert bad([data[0], broken]).startswith(f"b.json: record 1 (id {data[1]['id']}): layer 0: operation_type")
    del broken["hparams"]["model_hparam_overrides"]["hidden_size"]
    assert "needs hidden_size" in bad([broken])
    (tmp_path / "c.json").write_text("[{")
    with pytest.raises(LtsError, match="malformed JSON"):
        load_records(tmp_path / "c.json")
    with pytest.raises(LtsError, match="no such file"):
        load_records(tmp_path / "missing.json")
    untrained = {**data[2], "completed": False}
    assert load_records_one(tmp_path, untrained).glue is None


def load_records_one(tmp_path, rec):
    (tmp_path / "one.json").write_text(json.dumps([rec]))
    return load_records(tmp_path / "one.json")[0]
