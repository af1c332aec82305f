# Two entry points for a fresh machine (see README.md): `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench install clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

# The main job. Until the dashboard lands, a short tour of the CLI on the shipped data.
run: $(STAMP)
	$(BIN)/lts space show gpt2
	$(BIN)/lts sample --space gpt2 -n 3 --seed 0 | $(BIN)/lts proxy -
	$(BIN)/lts reference params
	$(BIN)/lts reference correlations

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python bench/proxy_speed.py

clean:
	rm -rf $(VENV) .pytest_cache
