# Two entry points for a fresh machine (see README.md): `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || { command -v sudo >/dev/null && echo sudo; })

.PHONY: run test bench install chromium clean

$(STAMP): requirements.txt requirements-dev.txt requirements-team.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

# The main job: the dashboard on the embedded SQLite database (results/lts.db), on 127.0.0.1:8501
# (`lts serve` refuses other addresses unless sign-in is configured; see README "Team use").
run: $(STAMP)
	$(BIN)/lts serve

# Debian's Chromium for the one real-browser test (Playwright's own browser download fails here).
chromium:
	@test -x $(CHROMIUM) || { [ "$$(id -u)" = 0 ] || [ -n "$(SUDO)" ]; } || { echo "no $(CHROMIUM) and no root: the browser test will skip"; exit 0; }; \
	test -x $(CHROMIUM) || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

test: $(STAMP) chromium
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python bench/proxy_speed.py
	$(BIN)/python bench/cost_fidelity.py
	$(BIN)/python bench/search_speed.py

clean:
	rm -rf $(VENV) .pytest_cache
