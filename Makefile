# Two entry points for a fresh machine (see README.md): `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || { command -v sudo >/dev/null && echo sudo; })

.PHONY: run test wheel-check bench install chromium clean

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

# The suite includes the wheel check (tests/test_packaging.py, marked slow, about a minute).
test: $(STAMP) chromium
	$(BIN)/python -m pytest

# Only the wheel check: build the wheel, install it with -c requirements.txt (torch: the pinned CPU
# build) in a fresh venv outside the repo, and run lts --help, sample, proxy, reference params, runs.
wheel-check: $(STAMP)
	$(BIN)/python -m pytest -m slow tests/test_packaging.py

bench: $(STAMP)
	$(BIN)/python bench/proxy_speed.py
	$(BIN)/python bench/cost_fidelity.py
	$(BIN)/python bench/search_speed.py
	$(BIN)/python bench/cli_startup.py

clean:
	rm -rf $(VENV) .pytest_cache
