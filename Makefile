# Two entry points, each works on a fresh machine with only Python 3.11:
#   make demo   set up .venv and run the main job (gated from-scratch pretraining)
#   make test   set up .venv and run every check: validate, verify, tests, falsifiers
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup demo gates test lint format clean

$(STAMP): pyproject.toml requirements-dev.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

RUN := runs/demo

demo: setup
	$(BIN)/contracts validate
	rm -rf $(RUN)
	$(BIN)/trainer pretrain --mode from-scratch --out $(RUN) --max-steps 2000
	$(BIN)/contracts check $(RUN)
	$(BIN)/contracts report $(RUN) --out $(RUN)/report.html

# The gates CI proves: a short real run passes `contracts check`, and a deliberately broken
# run (absurd lr) is aborted by a contract (trainer exit 3) and fails `contracts check` (exit 1).
gates: setup
	rm -rf runs/ci-smoke runs/ci-broken
	$(BIN)/trainer pretrain --mode from-scratch --out runs/ci-smoke --max-steps 120 --batch-size 4 --block-size 64 --eval-every 40 --no-progress
	$(BIN)/contracts check runs/ci-smoke
	status=0; $(BIN)/trainer pretrain --mode from-scratch --out runs/ci-broken --max-steps 40 --batch-size 4 --block-size 64 --eval-every 10 --lr 50 --no-export --no-progress || status=$$?; test $$status -eq 3
	status=0; $(BIN)/contracts check runs/ci-broken || status=$$?; test $$status -eq 1

test: setup
	$(BIN)/contracts validate --strict
	$(BIN)/contracts verify
	$(BIN)/contracts verify --mutants
	$(MAKE) --no-print-directory gates
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check src cli tests falsifiers benchmarks
	$(BIN)/ruff format --check src cli tests falsifiers benchmarks

format: setup
	$(BIN)/ruff format src cli tests falsifiers benchmarks

clean:
	rm -rf $(VENV) build dist .pytest_cache .hypothesis runs
