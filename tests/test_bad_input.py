"""Every bad input the user can give: one ``lts: error: ...`` line on stderr, status 2, no traceback,
no hang, and a pre-existing database left exactly as it was (bytes and rows).

Each row of the table names the case, the command line and the files it needs; ``{tmp}`` is the
test's folder, ``{db}`` a copy of a small database with one finished search, ``{run}`` that run's
id. Cases that used to hang (or to run for minutes) run in a subprocess with a timeout.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import small_space
from helpers import FAKE_DEVICE, FakeMeasure
from lts.cli import main
from lts.search.runner import SearchRunner, SearchSettings, create_run, max_decoder_params
from lts.space.ranges import SearchSpace
from lts.store.db import Store

REPO = Path(__file__).resolve().parents[1]

GOOD = '{"family": "gpt2", "n_layer": 2, "d_model": 128, "n_head": [2, 4], "d_inner": [512, 600]}'
DEEP_LIST = "[" * 100_000 + "]" * 100_000
DEEP_OBJECT = '{"a": ' * 100_000 + "1" + "}" * 100_000
BINARY = b"\xff\xfe\x00\x01\x89PNG\r\n\x1a\n\x00\x00"
# "billion laughs": 9**8 strings if expanded; a message that printed it would never end
_ANCHORS = ", ".join(["&a [x, x, x, x, x, x, x, x, x]"] + [f"&{k} [{', '.join([f'*{p}'] * 9)}]"
                                                           for p, k in zip("abcdefg", "bcdefgh")])
LAUGHS = f"family: gpt2\n{{field}}: [{_ANCHORS}]\n"


def _space(**over) -> str:
    return json.dumps({"family": "gpt2", **over})


# (name, argv, files {name: text or bytes}); argv and file contents may use {tmp}, {db}, {run}
PROXY_FILES = [
    ("binary", {"c.json": BINARY}),
    ("family_list", {"c.json": '{"family": ["gpt2"], "n_layer": 2}'}),
    ("family_object", {"c.json": '{"family": {"gpt2": 1}, "n_layer": 2}'}),
    ("family_number", {"c.json": '{"family": 7, "n_layer": 2}'}),
    ("deep_list", {"c.json": DEEP_LIST}),
    ("deep_object", {"c.json": DEEP_OBJECT}),
    ("non_object_item", {"c.json": f"[{GOOD}, 5]"}),
    ("non_object_json_line", {"c.json": f'{GOOD}\n"text"\n'}),
    ("list_of_lists", {"c.json": "[[1, 2], [3]]"}),
    ("bad_json_line", {"c.json": f"{GOOD}\n{{oops\n"}),
    ("empty", {"c.json": "  \n"}),
    ("n_layer_huge", {"c.json": '{"family": "gpt2", "n_layer": 100000000}'}),
    ("n_layer_float_huge", {"c.json": '{"family": "gpt2", "n_layer": 1e300}'}),
    ("n_layer_nan", {"c.json": '{"family": "gpt2", "n_layer": NaN}'}),
    ("n_layer_infinity", {"c.json": '{"family": "gpt2", "n_layer": Infinity}'}),
    ("n_layer_5000_digits", {"c.json": '{"family": "gpt2", "n_layer": 1' + "0" * 5000 + "}"}),
    ("d_model_huge", {"c.json": '{"family": "gpt2", "n_layer": 1, "d_model": 1048576, "n_head": 1}'}),
    ("d_inner_huge", {"c.json": '{"family": "gpt2", "n_layer": 1, "d_inner": 1000000000}'}),
    ("n_head_list_huge", {"c.json": '{"family": "gpt2", "n_layer": 2, "n_head": [' + ",".join(["4"] * 100_000) + "]}"}),
    ("vocab_huge", {"c.json": '{"family": "gpt2", "n_layer": 1, "vocab_size": 1000000000000}'}),
    ("too_many_cutoffs", {"c.json": json.dumps({"family": "gpt2", "n_layer": 1, "vocab_size": 100000,
                                                "cutoffs": list(range(100, 4100, 100))})}),
    ("cutoffs_not_list", {"c.json": '{"family": "gpt2", "n_layer": 1, "cutoffs": 5}'}),
    ("tgt_len_huge", {"c.json": '{"family": "gpt2", "n_layer": 1, "tgt_len": 100000000}'}),
    ("mem_len_huge", {"c.json": '{"family": "transxl", "n_layer": 1, "mem_len": 100000000}'}),
    ("d_head_huge", {"c.json": '{"family": "transxl", "n_layer": 1, "d_head": 100000000}'}),
    ("more_heads_than_width", {"c.json": '{"family": "transxl", "n_layer": 1, "d_model": 64, "d_head": 8, "n_head": 100}'}),
    ("div_val_huge", {"c.json": '{"family": "gpt2", "n_layer": 1, "div_val": 100000000}'}),
    ("key_not_string_like", {"c.json": '{"family": "gpt2", "n_layer": 1, "": 2}'}),
    ("huge_string", {"c.json": '{"family": "' + "x" * 1_000_000 + '", "n_layer": 1}'}),
    ("darts_op_size", {"c.json": '{"family": "darts", "n_layer": 1, "ops": [["conv999999999", "ffn"]]}'}),
    ("darts_op_unicode_digit", {"c.json": '{"family": "darts", "n_layer": 1, "ops": [["attn\u00b2", "ffn"]]}'}),
    ("darts_n_layer_huge", {"c.json": '{"family": "darts", "n_layer": 100000000}'}),
]

SPACE_FILES = [
    ("cutoffs_int", {"s.json": _space(cutoffs=5)}),
    ("cutoffs_text", {"s.json": _space(cutoffs="a")}),
    ("cutoffs_strings", {"s.json": _space(cutoffs=["a", "b"])}),
    ("cutoffs_too_many", {"s.json": _space(cutoffs=list(range(1, 100)))}),
    ("vocab_text", {"s.json": _space(vocab_size="big")}),
    ("vocab_huge", {"s.json": _space(vocab_size=10**12)}),
    ("tgt_len_list", {"s.json": _space(tgt_len=[1, 2])}),
    ("tgt_len_huge", {"s.json": _space(tgt_len=10**9)}),
    ("tie_weight_text", {"s.json": _space(tie_weight="yes")}),
    ("tie_projs_number", {"s.json": _space(tie_projs=3)}),
    ("name_list", {"s.json": _space(name=["a"])}),
    ("family_list", {"s.json": '{"family": ["gpt2"]}'}),
    ("d_model_range_huge", {"s.json": _space(d_model={"min": 8, "max": 10**15})}),
    ("d_model_many_choices", {"s.json": _space(d_model={"min": 8, "max": 65536}, n_head=[1])}),
    ("n_layer_range_huge", {"s.json": _space(n_layer={"min": 1, "max": 10**8})}),
    ("d_inner_range_huge", {"s.json": _space(d_inner={"min": 1, "max": 10**12})}),
    ("d_embed_choice_huge", {"s.json": _space(d_embed=[128, 10**9])}),
    ("n_head_many_choices", {"s.json": _space(n_head=list(range(1, 10_000)))}),
    ("transxl_odd_d_model", {"s.json": '{"family": "transxl", "d_model": [64, 65], "n_head": [1]}'}),
    ("range_float", {"s.json": _space(n_layer={"min": 1.5, "max": 4})}),
    ("deep", {"s.json": DEEP_LIST}),
    ("deep_value", {"s.json": '{"family": "gpt2", "cutoffs": ' + DEEP_LIST[:1800] + DEEP_LIST[-1800:] + "}"}),
    ("binary", {"s.json": BINARY}),
    ("binary_yaml", {"s.yaml": BINARY}),
    ("yaml_deep", {"s.yaml": "a: " + DEEP_LIST}),
    ("yaml_mixed_keys", {"s.yaml": "family: gpt2\n1: 2\nx: 3\n"}),
    ("yaml_complex_key", {"s.yaml": "family: gpt2\n? [a, b]\n: 3\n"}),
    ("yaml_list", {"s.yaml": "- 1\n- 2\n"}),
    ("yaml_scalar", {"s.yaml": "hello\n"}),
    ("yaml_empty", {"s.yaml": ""}),
    ("yaml_date", {"s.yaml": "family: gpt2\nd_model: 2020-01-01\n"}),
    ("yaml_date_family", {"s.yaml": "family: 2020-01-01\n"}),
    ("yaml_two_documents", {"s.yaml": "family: gpt2\n---\nfamily: gpt2\n"}),
    ("yaml_python_tag", {"s.yaml": "family: !!python/object/apply:os.getcwd []\n"}),
    ("yaml_binary_tag", {"s.yaml": "family: gpt2\ncutoffs: !!binary aGVsbG8=\n"}),
    ("yaml_laughs_cutoffs", {"s.yaml": LAUGHS.replace("{field}", "cutoffs")}),
    ("yaml_laughs_choices", {"s.yaml": LAUGHS.replace("{field}", "d_model")}),
    ("yaml_laughs_fixed", {"s.yaml": LAUGHS.replace("{field}", "tgt_len")}),
    ("yaml_huge_int", {"s.yaml": "family: gpt2\nvocab_size: 1" + "0" * 5000 + "\n"}),
]

SEARCH = ["search", "--db", "{db}", "--device-name", "x", "--no-progress"]
SEARCH_FLAGS = [
    ("generation_0", ["--budget", "5", "--generation", "0"]),
    ("generation_negative", ["--budget", "5", "--generation", "-3"]),
    ("generation_huge", ["--budget", "5", "--generation", "1000000000"]),
    ("population_0", ["--budget", "5", "--population", "0"]),
    ("population_huge", ["--time-budget", "5", "--population", "1000000000"]),
    ("budget_0", ["--budget", "0"]),
    ("budget_negative", ["--budget", "-2"]),
    ("budget_text", ["--budget", "many"]),
    ("budget_float", ["--budget", "2.5"]),
    ("no_budget", []),
    ("time_budget_nan", ["--time-budget", "nan"]),
    ("time_budget_inf", ["--time-budget", "inf"]),
    ("time_budget_0", ["--time-budget", "0"]),
    ("time_budget_negative", ["--time-budget", "-1"]),
    ("max_latency_nan", ["--budget", "5", "--max-latency-ms", "nan"]),
    ("max_latency_inf", ["--budget", "5", "--max-latency-ms", "inf"]),
    ("max_latency_negative", ["--budget", "5", "--max-latency-ms", "-1"]),
    ("max_latency_0", ["--budget", "5", "--max-latency-ms", "0"]),
    ("max_memory_nan", ["--budget", "5", "--max-memory-mb", "nan"]),
    ("max_memory_negative", ["--budget", "5", "--max-memory-mb", "-5"]),
    ("min_params_0", ["--budget", "5", "--min-params", "0"]),
    ("min_params_above_max", ["--budget", "5", "--min-params", "7", "--max-params", "6"]),
    ("min_params_beyond_space", ["--budget", "5", "--min-params", "10000000000"]),
    ("max_params_below_space", ["--budget", "5", "--max-params", "10"]),
    ("max_params_nan", ["--budget", "5", "--max-params", "nan"]),
    ("batch_0", ["--budget", "5", "--batch", "0"]),
    ("batch_huge", ["--budget", "5", "--batch", "100000000"]),
    ("seq_len_0", ["--budget", "5", "--seq-len", "0"]),
    ("seq_len_huge", ["--budget", "5", "--seq-len", "100000000"]),
    ("threads_0", ["--budget", "5", "--threads", "0"]),
    ("threads_huge", ["--budget", "5", "--threads", "100000"]),
    ("surrogate_pool_0", ["--budget", "5", "--surrogate", "--surrogate-pool", "0"]),
    ("surrogate_z_nan", ["--budget", "5", "--surrogate", "--surrogate-z", "nan"]),
    ("surrogate_z_negative", ["--budget", "5", "--surrogate", "--surrogate-z", "-1"]),
    ("drift_every_negative", ["--budget", "5", "--drift-every", "-1"]),
    ("drift_threshold_0", ["--budget", "5", "--drift-threshold", "0"]),
    ("drift_threshold_nan", ["--budget", "5", "--drift-threshold", "nan"]),
    ("drift_threshold_huge", ["--budget", "5", "--drift-threshold", "50"]),
    ("seed_huge", ["--budget", "5", "--seed", str(10**30)]),
    ("objectives_unknown", ["--budget", "5", "--objectives", "proxy,speed"]),
    ("space_unknown", ["--budget", "5", "--space", "rnn"]),
]

CASES: list[tuple[str, list[str], dict]] = []
CASES += [(f"proxy_{n}", ["proxy", "{tmp}/c.json"], f) for n, f in PROXY_FILES]
CASES += [(f"measure_{n}", ["measure", "{tmp}/c.json", "--device-name", "x"], f) for n, f in PROXY_FILES[:8]]
CASES += [(f"space_show_{n}", ["space", "show", "{tmp}/" + next(iter(f))], f) for n, f in SPACE_FILES]
CASES += [(f"sample_space_{n}", ["sample", "--space", "{tmp}/" + next(iter(f))], f) for n, f in SPACE_FILES[:6]]
CASES += [(f"search_space_{n}", [*SEARCH, "--budget", "3", "--space", "{tmp}/" + next(iter(f))], f)
          for n, f in SPACE_FILES]
CASES += [(f"search_{n}", [*SEARCH, *flags], {}) for n, flags in SEARCH_FLAGS]
CASES += [
    ("search_no_device_name", ["search", "--db", "{db}", "--budget", "3"], {}),
    ("proxy_missing_file", ["proxy", "{tmp}/nope.json"], {}),
    ("proxy_directory", ["proxy", "{tmp}"], {}),
    ("proxy_outside_space", ["proxy", "{tmp}/c.json", "--space", "gpt2"],
     {"c.json": '{"family": "gpt2", "n_layer": 2, "d_model": 1024}'}),
    ("sample_n_negative", ["sample", "-n", "-1"], {}),
    ("sample_n_text", ["sample", "-n", "x"], {}),
    ("measure_batch_0", ["measure", "{tmp}/c.json", "--device-name", "x", "--batch", "0"], {"c.json": GOOD}),
    ("measure_seq_len_negative", ["measure", "{tmp}/c.json", "--device-name", "x", "--seq-len", "-1"], {"c.json": GOOD}),
    ("measure_threads_0", ["measure", "{tmp}/c.json", "--device-name", "x", "--threads", "0"], {"c.json": GOOD}),
    ("measure_timeout_nan", ["measure", "{tmp}/c.json", "--device-name", "x", "--timeout", "nan"], {"c.json": GOOD}),
    ("measure_timeout_0", ["measure", "{tmp}/c.json", "--device-name", "x", "--timeout", "0"], {"c.json": GOOD}),
    ("measure_timeout_huge", ["measure", "{tmp}/c.json", "--device-name", "x", "--timeout", "1e300"], {"c.json": GOOD}),
    ("measure_memory_nan", ["measure", "{tmp}/c.json", "--device-name", "x", "--memory-limit-mb", "nan"], {"c.json": GOOD}),
    ("measure_memory_inf", ["measure", "{tmp}/c.json", "--device-name", "x", "--memory-limit-mb", "inf"], {"c.json": GOOD}),
    ("measure_memory_negative", ["measure", "{tmp}/c.json", "--device-name", "x", "--memory-limit-mb", "-1"], {"c.json": GOOD}),
    ("export_run_to_directory", ["export-run", "{run}", "--db", "{db}", "-o", "{tmp}"], {}),
    ("export_run_missing_folder", ["export-run", "{run}", "--db", "{db}", "-o", "{tmp}/no/such/b.json"], {}),
    ("export_run_parent_is_file", ["export-run", "{run}", "--db", "{db}", "-o", "{tmp}/f.txt/b.json"], {"f.txt": "x"}),
    ("export_run_unknown_run", ["export-run", "nope", "--db", "{db}", "-o", "{tmp}/b.json"], {}),
]

# What used to hang or to run for minutes: in a subprocess, so that a regression fails, not hangs.
HANG = {"search_generation_0", "search_generation_negative", "search_population_0", "search_population_huge",
        "proxy_n_layer_huge", "space_show_d_model_range_huge", "space_show_n_layer_range_huge",
        "space_show_d_model_many_choices", "space_show_yaml_laughs_cutoffs"}


# -- the database every --db case starts from ----------------------------------------------------
def _checkpoint(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    conn.close()


def fingerprint(path: Path) -> tuple[str, dict[str, int]]:
    """(sha256 of the file after a WAL checkpoint, rows per table)."""
    _checkpoint(path)
    conn = sqlite3.connect(path)
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    rows = {t: conn.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in tables}
    conn.close()
    return hashlib.sha256(path.read_bytes()).hexdigest(), rows


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("template") / "lts.db"
    store = Store(path)
    run_id = create_run(store, SearchSettings(space=small_space("gpt2"), budget=4, seed=1), FAKE_DEVICE, "fake-b1")
    SearchRunner(store, run_id, measure=FakeMeasure()).run_to_end()
    store.close()
    _checkpoint(path)
    return path, run_id


@pytest.fixture
def env(tmp_path, template) -> dict[str, str]:
    db = tmp_path / "db" / "lts.db"
    db.parent.mkdir()
    shutil.copy(template[0], db)
    return {"tmp": str(tmp_path), "db": str(db), "run": template[1]}


def _fill(text: str, env: dict[str, str]) -> str:
    for k, v in env.items():
        text = text.replace("{" + k + "}", v)
    return text


def run_cli(argv: list[str], capsys, stdin: bytes | None = None, monkeypatch=None) -> tuple[int, str, str]:
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"))
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse refusals
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def run_subprocess(argv: list[str], timeout: float = 60) -> tuple[int, str, str]:
    proc = subprocess.run([sys.executable, "-m", "lts.cli", *argv], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)
    return proc.returncode, proc.stdout, proc.stderr


def assert_one_line_error(code: int, out: str, err: str) -> str:
    assert code == 2, (code, err[-2000:])
    assert "Traceback" not in err, err[-2000:]
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("lts: error: ") and lines[0][len("lts: error: "):].strip(), err[:2000]
    assert len(lines[0]) < 400, lines[0][:400]  # a short message, whatever the input held
    assert out == ""
    return lines[0]


@pytest.mark.parametrize("name, argv, files", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_leaves_the_database_alone(name, argv, files, env, capsys):
    for fname, content in files.items():
        path = Path(env["tmp"]) / fname
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(_fill(content, env))
    argv = [_fill(a, env) for a in argv]
    db = Path(env["db"])
    before = fingerprint(db)
    code, out, err = run_subprocess(argv) if name in HANG else run_cli(argv, capsys)
    assert_one_line_error(code, out, err)
    assert fingerprint(db) == before


def test_stdin_that_is_not_text(capsys, monkeypatch):
    assert_one_line_error(*run_cli(["proxy", "-"], capsys, stdin=BINARY, monkeypatch=monkeypatch))


def test_refused_search_creates_no_database(tmp_path, capsys):
    for flags in (["--generation", "0"], ["--time-budget", "nan"], ["--min-params", "10000000000"],
                  ["--space", str(tmp_path / "s.json")]):
        (tmp_path / "s.json").write_text(_space(cutoffs=5))
        db = tmp_path / "new" / "lts.db"
        assert_one_line_error(*run_cli(["search", "--db", str(db), "--device-name", "x", "--budget", "3", *flags], capsys))
        assert not db.parent.exists()


def test_export_run_to_an_unwritable_file(env, capsys, monkeypatch):
    def refuse(self, *a, **k):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "write_text", refuse)
    line = assert_one_line_error(*run_cli(["export-run", env["run"], "--db", env["db"], "-o", env["tmp"] + "/b.json"], capsys))
    assert "Permission denied" in line


def test_unsatisfiable_min_params_names_the_space_range(env, capsys):
    space = SearchSpace.default("gpt2")
    fewest, most = space.decoder_param_range()
    before = fingerprint(Path(env["db"]))
    line = assert_one_line_error(*run_cli([*[_fill(a, env) for a in SEARCH], "--objectives", "proxy", "--budget", "5",
                                           "--min-params", str(most + 1)], capsys))
    assert line == (f"lts: error: no architecture of this space has >= {most + 1:,} decoder parameters "
                    f"(the space spans {fewest:,} - {most:,})")
    assert fingerprint(Path(env["db"])) == before


# -- good input still works ---------------------------------------------------------------------------
def test_good_proxy_prints_one_json_line(tmp_path, capsys):
    f = tmp_path / "c.json"
    f.write_text(GOOD)
    code, out, err = run_cli(["proxy", str(f)], capsys)
    assert code == 0 and err == ""
    assert len(out.splitlines()) == 1 and json.loads(out)["decoder_params"] > 0


def test_good_space_file_and_limits_at_their_edge(tmp_path, capsys):
    f = tmp_path / "s.json"
    f.write_text(_space(d_model={"min": 16, "max": 65536, "step": 16}, n_layer={"min": 1, "max": 256},
                        d_inner={"min": 1, "max": 262144}, n_head=[1, 2, 4]))
    code, out, _ = run_cli(["space", "show", str(f)], capsys)
    assert code == 0 and json.loads(out)["log10_size"] > 1000


def test_min_params_near_the_top_evaluates_the_whole_budget(env, capsys):
    most = max_decoder_params(SearchSpace.default("gpt2"))
    for strategy in ("evolution", "random"):
        code, out, err = run_cli([*[_fill(a, env) for a in SEARCH], "--objectives", "proxy", "--budget", "25",
                                  "--population", "10", "--strategy", strategy, "--min-params", str(int(0.95 * most))],
                                 capsys)
        assert code == 0, err
        assert "status finished: 25 evaluated" in out and "message:" not in out
    conn = sqlite3.connect(env["db"])
    counts = [r[0] for r in conn.execute(
        "SELECT a.decoder_params FROM run_members m JOIN architectures a USING (arch_id) "
        "JOIN runs r USING (run_id) WHERE r.constraints_json LIKE '%min_params%'")]
    conn.close()
    assert len(counts) == 50 and min(counts) >= 0.95 * most - 1
    assert len(set(counts)) > 10  # spread over the window, not all piled at its lower bound


def test_good_export_run(env, capsys):
    code, out, _ = run_cli(["export-run", env["run"], "--db", env["db"], "-o", env["tmp"] + "/b.json"], capsys)
    assert code == 0 and out.startswith("wrote ")
