"""The README's worked example, run as written: lts search -> lts export -> from_config -> Trainer -> generate."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def example_blocks() -> tuple[str, str]:
    text = README.read_text()
    part = text.split("<!-- worked-example: begin -->", 1)[1].split("<!-- worked-example: end -->", 1)[0]
    bash = re.search(r"```bash\n(.*?)```", part, re.S).group(1)
    python = re.search(r"```python\n(.*?)```", part, re.S).group(1)
    return bash, python


@pytest.mark.slow
def test_the_worked_example_runs_as_written(tmp_path):
    pytest.importorskip("accelerate")
    bash, python = example_blocks()
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}", "HF_HUB_OFFLINE": "1",
           "HF_HUB_DISABLE_PROGRESS_BARS": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("LTS_DB", None)
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", bash], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "model" / "config.json").is_file() and "architecture only" in out.stdout

    (tmp_path / "example.py").write_text(python)
    out = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    losses_line, text = out.stdout.strip().splitlines()[-2:]
    losses = [float(x) for x in losses_line.strip("[]").split(",")]
    assert len(losses) == 8 and losses[-1] < losses[0]
    assert text.startswith("It is a truth universally ") and len(text) > len("It is a truth universally ")
    assert (tmp_path / "trained" / "model.safetensors").is_file()
