# `make test` builds everything from nothing: the virtualenv, the project with its dev extras,
# then lint, types and the whole suite (which migrates its own databases and starts its own
# mosquitto).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test test-fast lint typecheck pytest install bench demo clean chromium

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy --strict

# The browser tests drive Debian's Chromium (never a browser downloaded by Playwright).
chromium:
	@[ -x /usr/bin/chromium ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || echo "warning: could not install chromium; the browser tests skip (and fail under CI=true)"

# One worker per core (pytest-xdist); a test module stays on one worker, so its fixtures and
# servers are set up once. Every test has its own ports, broker and databases.
PYTEST_WORKERS ?= auto
pytest: $(STAMP) chromium
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile

test: lint typecheck pytest

# The quick part for day-to-day work: lint, types and the suite without the slow fault, crash and
# benchmark tests and without the browser tests. `make test` still runs everything.
test-fast: lint typecheck $(STAMP)
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile -m "not slow and not browser"

bench: $(STAMP)
	$(BIN)/python -m bench

demo: $(STAMP)
	$(BIN)/kneeguard demo

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
