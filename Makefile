# One command each: `make demo` (offline demo), `make test` (set up and run every test).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: all demo test test-fast lint bench bench-big bench-serve lab-up lab-down clean wheelhouse-windows windows-wheels-check

all: test

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,lab]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/fleet demo

test: $(STAMP)
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not lab"

lint: $(STAMP)
	$(BIN)/ruff check fleet tests bench tools
	$(BIN)/ruff format --check fleet tests bench tools
	$(BIN)/mypy
# the same strict check again as Windows sees it (no fcntl, no add_signal_handler, msvcrt)
	$(BIN)/mypy --platform win32 --cache-dir .mypy_cache/win32
	$(BIN)/mypy --strict tools
	$(BIN)/lint-imports --no-cache

bench: $(STAMP)
	$(BIN)/python -m bench.run

bench-big: $(STAMP)
	$(BIN)/python -m bench.run --big

bench-serve: $(STAMP)
	$(BIN)/python -m bench.serve --results 2000 --concurrency 200

lab-up: $(STAMP)
	$(BIN)/python -m tests.lab up

lab-down: $(STAMP)
	$(BIN)/python -m tests.lab down

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis

# Every runtime dependency as a win_amd64 wheel for CPython 3.11-3.13 (fails naming any that
# has none), with fleet's own wheel: `pip install --no-index --find-links` on Windows.
wheelhouse-windows: $(STAMP)
	$(BIN)/python tools/windows_wheels.py --wheelhouse dist/wheelhouse-windows

# The same check without keeping the wheels (CI: needs PyPI).
windows-wheels-check: $(STAMP)
	$(BIN)/python tools/windows_wheels.py
