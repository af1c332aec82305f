#!/usr/bin/env bash
# The CUDA measurement path on a machine with a GPU (bench/cuda_check.py says what is checked).
# Uses the repository's .venv when there is one, else python3 with torch importable.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
exec timeout 300 "$PY" bench/cuda_check.py "$@"
