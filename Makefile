# Two commands do all the set-up on a fresh machine with Python >= 3.10:
#   make run    creates .venv, installs metabo, runs the main job (quick reproduction)
#   make test   creates .venv, installs metabo with its dev extras, runs the tests
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test test-slow bench lint clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

run: $(BIN)/.installed
	$(BIN)/metabo reproduce --quick

# Two test processes: the suite is CPU-bound and CI has 2 cores.
test: $(BIN)/.installed
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

test-slow: $(BIN)/.installed
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup -m slow

bench: $(BIN)/.installed
	$(BIN)/python scripts/bench_pretrain.py
	$(BIN)/python scripts/bench_bo.py

lint: $(BIN)/.installed
	$(BIN)/ruff check metabo tests scripts experiments

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
