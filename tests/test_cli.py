import json

import pytest

from lts.cli import main
from lts.space.counts import decoder_params
from lts.space.config import config_from_dict


def run(capsys, *argv, stdin=None, monkeypatch=None):
    if stdin is not None:
        import io

        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_sample_is_seeded_json_lines(capsys):
    _, a, _ = run(capsys, "sample", "--space", "gpt2", "-n", "5", "--seed", "0")
    _, b, _ = run(capsys, "sample", "--space", "gpt2", "-n", "5", "--seed", "0")
    assert a == b
    lines = a.splitlines()
    assert len(lines) == 5
    assert all(config_from_dict(json.loads(line)).family == "gpt2" for line in lines)


def test_proxy_on_file_and_stdin(capsys, monkeypatch, tmp_path):
    cfg = {"family": "transxl", "n_layer": 2, "d_model": 128, "n_head": [2, 8], "d_inner": [600, 900]}
    f = tmp_path / "a.json"
    f.write_text(json.dumps(cfg))
    code, out, _ = run(capsys, "proxy", str(f))
    assert code == 0
    row = json.loads(out)
    assert row["decoder_params"] == decoder_params(config_from_dict(cfg))
    assert set(row) == {"arch_id", "family", "decoder_params", "total_params", "flops"}
    _, sampled, _ = run(capsys, "sample", "--space", "transxl", "-n", "3")
    code, out, _ = run(capsys, "proxy", "-", stdin=sampled, monkeypatch=monkeypatch)
    assert code == 0 and len(out.splitlines()) == 3


@pytest.mark.parametrize(
    "content, message",
    [
        ("{oops", "malformed JSON"),
        ('{"family": "gpt2", "n_layer": 2, "n_head": [3, 4], "d_model": 128}', "n_head[0]=3"),
        ('{"family": "gpt2", "n_layer": 2, "d_model": 1024}', "outside the space"),
        ("", "no config"),
    ],
)
def test_bad_input_gives_one_line_and_status_2(capsys, tmp_path, content, message):
    f = tmp_path / "bad.json"
    f.write_text(content)
    code, out, err = run(capsys, "proxy", str(f), "--space", "gpt2")
    assert code == 2 and out == ""
    assert message in err and err.count("\n") == 1 and err.startswith("lts: error:")


def test_missing_file(capsys):
    code, _, err = run(capsys, "proxy", "does/not/exist.json")
    assert code == 2 and "no such file" in err


def test_space_show_and_reference(capsys):
    code, out, _ = run(capsys, "space", "show", "transxl")
    assert code == 0 and json.loads(out)["mem_len"] == 192
    code, out, _ = run(capsys, "reference", "correlations")
    assert code == 0 and "random_GPT2_wt103" in out and "0.967" in out and "0.974" in out
    code, out, _ = run(capsys, "reference", "params", "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert all(r["nonembedding_exact"] == r["n"] for r in rows)


def test_argparse_refusals_are_one_line(capsys):
    for argv in (["search", "--generation", "0"], ["sample", "-n", "-1"], ["measure", "x.json"],
                 ["search", "--max-latency-ms", "nan"], ["nosuchcommand"]):
        code = main(argv)  # the status, not SystemExit: main() returns it for argparse refusals too
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and err.startswith("lts: error: "), err


def test_search_says_why_it_stopped_early(capsys, tmp_path):
    space = tmp_path / "tiny.json"
    space.write_text(json.dumps({"family": "gpt2", "n_layer": [1], "d_model": [16], "n_head": [1], "d_embed": [16],
                                 "div_val": [1], "d_inner": {"min": 8, "max": 9}, "vocab_size": 300}))
    code, out, _ = run(capsys, "search", "--db", str(tmp_path / "s.db"), "--space", str(space), "--objectives",
                       "proxy", "--budget", "5", "--no-progress")
    assert code == 0 and "status finished: 2 evaluated" in out
    assert "message: the space has no unevaluated architecture left" in out
