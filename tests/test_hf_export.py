import pytest

from lts.errors import LtsError
from lts.models.hf import build_hf_model
from lts.space.counts import decoder_params
from lts.space.config import GPT2Config, TransXLConfig


def test_homogeneous_gpt2_builds_as_transformers_model_with_same_decoder():
    cfg = GPT2Config(n_layer=2, d_model=64, d_embed=64, n_head=[4, 4], d_inner=[256, 256],
                     vocab_size=500, cutoffs=[], tie_projs=[False], tgt_len=32)
    model = build_hf_model(cfg)
    total = sum(p.numel() for p in model.parameters())
    embedding = model.transformer.wte.weight.numel() + model.transformer.wpe.weight.numel()
    assert total - embedding == decoder_params(cfg)
    assert model.config.n_positions == 32 and model.config.n_inner == 256


@pytest.mark.parametrize(
    "cfg, reason",
    [
        (GPT2Config(n_layer=2, d_model=64, d_embed=64, n_head=[4, 2], d_inner=[256, 256], vocab_size=500, cutoffs=[], tie_projs=[False]), "n_head"),
        (GPT2Config(n_layer=1, d_model=64, d_embed=64, n_head=[4], d_inner=[256], vocab_size=500, cutoffs=[100], tie_projs=[False, True]), "cutoffs"),
        (TransXLConfig(n_layer=1), "gpt2"),
    ],
)
def test_non_gpt2_shapes_are_refused(cfg, reason):
    with pytest.raises(LtsError, match=reason):
        build_hf_model(cfg)


def test_exportability_is_known_without_importing_transformers():
    """The Architecture page asks before it offers the download (which builds the config when clicked)."""
    import subprocess
    import sys

    code = ("import sys; from lts.models.hf import why_not_exportable; from lts.space.config import GPT2Config; "
            "ok = GPT2Config(n_layer=2, d_model=64, d_embed=64, n_head=[4, 4], d_inner=[256, 256], vocab_size=500, "
            "cutoffs=[], tie_projs=[False]); bad = ok.replace(n_head=(4, 2)); "
            "assert why_not_exportable(ok) is None and 'n_head' in why_not_exportable(bad); "
            "print('transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
