# `make demo` and `make test` are all a fresh machine needs (Python 3.11+ as python3).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/shipyard demo

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

test: $(STAMP) lint
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) bench/tracking.py
	$(PY) bench/data.py
	$(PY) bench/serving.py
	$(PY) bench/serving_abuse.py
	$(PY) bench/guards.py

clean:
	rm -rf $(VENV) .shipyard .pytest_cache .ruff_cache
