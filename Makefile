# Two entry points, each works on a fresh machine with only Python 3.11:
#   make demo   set up .venv and run the main job (gated from-scratch pretraining)
#   make test   set up .venv and run every check: validate, verify, tests, falsifiers
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup demo test lint format clean

$(STAMP): pyproject.toml requirements-dev.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/contracts validate
	$(BIN)/contracts show INV-TRAIN-005 --regime from-scratch --param vocab_size=50257
	$(BIN)/contracts verify

test: setup
	$(BIN)/contracts validate --strict
	$(BIN)/contracts verify
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check src cli tests falsifiers benchmarks
	$(BIN)/ruff format --check src cli tests falsifiers benchmarks

format: setup
	$(BIN)/ruff format src cli tests falsifiers benchmarks

clean:
	rm -rf $(VENV) build dist .pytest_cache .hypothesis runs
