"""The installed ``lts`` as a user gets it: model-free commands start without the heavy libraries,
and the wheel (its dependencies, its package data) gives a working CLI in a fresh venv.

Start-up time itself is measured in bench/cli_startup.py (no timing asserts: shared machines).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# What a model-free command must not load: each costs 0.3-1.5 s at start (torch alone ~1.5 s).
HEAVY = ("torch", "pandas", "sklearn", "transformers", "streamlit", "scipy", "pymoo")

# Runs one CLI invocation in a fresh interpreter and reports which heavy modules it left loaded.
_PROBE = """
import json, os, sys
from lts.cli import main
try:
    rc = main(sys.argv[1:])
except SystemExit as exc:  # --help, argparse errors
    rc = exc.code
heavy = sorted(m for m in json.loads(os.environ["LTS_HEAVY"]) if m in sys.modules)
with open(os.environ["LTS_PROBE_OUT"], "w") as f:
    json.dump({"rc": rc, "heavy": heavy}, f)
"""

def _probe(argv: list[str], cwd: Path) -> dict:
    out = cwd / "probe.json"
    env = {**os.environ, "LTS_HEAVY": json.dumps(HEAVY), "LTS_PROBE_OUT": str(out),
           "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", _PROBE, *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)
    assert out.is_file(), proc.stderr
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A small database with one finished proxy-only run, its bundle and a configs file."""
    d = tmp_path_factory.mktemp("light")
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def lts(*argv: str) -> str:
        proc = subprocess.run([sys.executable, "-m", "lts.cli", *argv], cwd=d, env=env, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    lts("search", "--space", "gpt2", "--objectives", "proxy", "--budget", "6", "--db", "lts.db", "--no-progress")
    run_id = lts("runs", "--db", "lts.db").splitlines()[1].split()[0]
    lts("export-run", run_id, "-o", "bundle.json.gz", "--db", "lts.db")
    (d / "configs.jsonl").write_text(lts("sample", "-n", "3"))
    (d / "run_id").write_text(run_id)
    return d


LIGHT = {
    "help": (["--help"], 0),
    "runs": (["runs", "--db", "lts.db"], 0),
    "frontier": (["frontier", "{run}", "--db", "lts.db"], 0),
    "export-run": (["export-run", "{run}", "-o", "again.json.gz", "--db", "lts.db"], 0),
    "import": (["import", "bundle.json.gz", "--db", "other.db"], 0),
    "import --help": (["import", "--help"], 0),
    "sample": (["sample", "-n", "3"], 0),
    "proxy": (["proxy", "configs.jsonl", "--breakdown"], 0),
    "reference params": (["reference", "params"], 0),
    "team --help": (["team", "--help"], 0),
    "space show": (["space", "show", "gpt2"], 0),
}


@pytest.mark.parametrize("name", list(LIGHT))
def test_model_free_commands_import_nothing_heavy(workdir: Path, name: str) -> None:
    argv, rc = LIGHT[name]
    run_id = (workdir / "run_id").read_text()
    result = _probe([a.replace("{run}", run_id) for a in argv], workdir)
    assert result["rc"] == rc
    assert result["heavy"] == [], f"lts {' '.join(argv)} imported {result['heavy']}"


# -- the wheel --------------------------------------------------------------------------------
def _run(cmd: list[str], **kw) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, **kw)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout


@pytest.mark.slow
def test_wheel_installs_a_working_lts(tmp_path: Path) -> None:
    """Build the wheel, install it with its declared dependencies in a fresh venv outside the repo
    and run the model-free commands from a folder where the source tree cannot be imported.

    -c requirements.txt pins torch to the local CPU build (unpinned, pip would take PyPI's multi-GB
    CUDA one); pip's cache is kept, so a repeat run takes about a minute.
    """
    # Built from a copy: setuptools writes build/ and lts.egg-info/ beside the sources, and others may
    # be building or testing in this checkout at the same time.
    src = tmp_path / "src"
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "lts", src / "lts", ignore=skip)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    dist = tmp_path / "dist"
    # --no-build-isolation: this venv's setuptools builds it, nothing is fetched for the build.
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(src), "-w", str(dist)])
    (wheel,) = dist.glob("lts-*.whl")

    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {p.relative_to(REPO).as_posix() for p in (REPO / "lts").rglob("*")
               if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}
    assert shipped - names == set(), "files of lts/ missing from the wheel"

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    _run([str(py), "-m", "pip", "install", "-q", "-c", str(REPO / "requirements.txt"), str(wheel)])
    # Nothing but the declared dependencies may be present: the wheel must not lean on the dev venv.
    assert "streamlit" not in _run([str(py), "-m", "pip", "list", "--format=freeze"]).lower()

    lts = str(env_dir / "bin" / "lts")
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LTS_DB")}
    assert "usage: lts" in _run([lts, "--help"], cwd=work, env=env)
    configs = _run([lts, "sample", "-n", "3"], cwd=work, env=env)
    assert len(configs.splitlines()) == 3
    rows = [json.loads(line) for line in _run([lts, "proxy", "-"], cwd=work, env=env, input=configs).splitlines()]
    assert len(rows) == 3 and all(r["decoder_params"] > 0 for r in rows)
    # Package data: the published architectures ship in lts/data.
    assert "nonembedding_exact" in _run([lts, "reference", "params"], cwd=work, env=env)
    # The store and the surrogates' scikit-learn: declared dependencies, not only the dev venv's.
    _run([lts, "runs", "--db", str(work / "lts.db")], cwd=work, env=env)
    _run([str(py), "-c", "import lts.surrogate.model, lts.pareto, lts.store.bundle, lts.text.tokenizer, "
                         "lts.decide.points; import sklearn, pymoo, tokenizers"], cwd=work, env=env)
