# `make demo` and `make test` are all a fresh machine needs (Python 3.11+ as python3).
#   make demo       .venv with Shipyard and the demo's extras only (sklearn, serve, governance, monitor), then `shipyard demo`
#   make test       adds the dev extras (tests, linters, every flavor) to .venv, then lint, then pytest with mypy beside it
#   make lint       ruff and import-linter        make typecheck   mypy (strict)
#   make bench      the benchmarks (bench/)       make clean       removes .venv and caches
# Installs use uv (installed into .venv from PyPI: seconds instead of minutes) and fall back to pip.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_STAMP := $(VENV)/.installed-demo
DEV_STAMP := $(VENV)/.installed-dev
DEMO_EXTRAS := sklearn,serve,governance,monitor

.PHONY: demo test lint typecheck bench clean compile

# $(call install,EXTRAS): Shipyard in editable mode with EXTRAS, printing each step. uv is used when .venv
# (or PATH) has it, and looks where pip's configuration looks (its find-links: a machine may keep wheels on
# disk, such as the CPU build of torch that the dev extras pin, where PyPI's build pulls GBs of CUDA).
# uv compiles the bytecode as pip does: left to each process, every stage of the demo would compile thousands of
# scikit-learn and SciPy modules again where .pyc files are not written (PYTHONDONTWRITEBYTECODE, read-only venvs).
# pip, with its progress bar, is the fallback.
define install
	@uv=$$(command -v $(VENV)/bin/uv || command -v uv || true); \
	if [ -n "$$uv" ]; then \
	  flags=$$($(PY) -m pip config list 2>/dev/null | sed -n "s/^.*find-links='\(.*\)'$$/\1/p" | tr ' ' '\n' \
	           | sort -u | sed '/^$$/d; s/^/--find-links /' | paste -sd ' '); \
	  echo "==> installing shipyard[$(1)] with uv$${flags:+ ($$flags)}"; \
	  $$uv pip install --python $(PY) --compile-bytecode $$flags -e ".[$(1)]" && exit 0; \
	  echo "==> uv failed: installing with pip instead"; \
	fi; \
	echo "==> installing shipyard[$(1)] with pip"; \
	$(PY) -m pip install --disable-pip-version-check --progress-bar on -e ".[$(1)]"
endef

# A failed venv (Debian without python3-venv makes bin/python, then fails at ensurepip) is removed: left
# there, the next make would take it for done and install into an interpreter without pip.
$(PY):
	@echo "==> creating $(VENV) with $$($(PYTHON) --version)"
	@$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); echo "$(PYTHON) -m venv failed (on Debian/Ubuntu: apt install python3-venv)"; exit 1; }
	@if ! command -v uv >/dev/null; then \
	  echo "==> installing uv into $(VENV) (a fast installer; pip is the fallback)"; \
	  $(PY) -m pip install --disable-pip-version-check --progress-bar on uv \
	    || echo "==> uv could not be installed: pip will install Shipyard (slower)"; \
	fi

# The demo's extras only; the dev install (a superset) marks them installed too.
$(DEMO_STAMP): pyproject.toml | $(PY)
	$(call install,$(DEMO_EXTRAS))
	@touch $@

# Shipyard's own modules as bytecode. The install compiles what it installs, but Shipyard is installed editable,
# so its modules are compiled by each process that imports them, and written nowhere where .pyc files are not
# written (PYTHONDONTWRITEBYTECODE, as on the CI machines): the demo's stages and servers and the tests' CLI
# processes each compiled ~100-250 modules again (0.1-0.2 s of CPU apiece; the whole suite went from 852 s to 662 s
# when they stopped). compileall writes them whatever that variable says, and skips the up-to-date ones; a module
# edited later is compiled in memory until the next run.
compile: | $(PY)
	@$(PY) -m compileall -q src > /dev/null

$(DEV_STAMP): pyproject.toml | $(PY)
	$(call install,dev)
	@touch $@ $(DEMO_STAMP)

demo: $(DEMO_STAMP) compile
	@echo "==> shipyard demo"
	@$(VENV)/bin/shipyard demo

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/lint-imports

typecheck: $(DEV_STAMP)
	$(VENV)/bin/mypy

# Three workers on two cores: most tests wait on a subprocess, a server or a database, so a third keeps both cores
# busy (the whole suite: 830 s with two, 718 s with three, on the 2-core CI kind of machine, before issues 13-14;
# on 2026-11-30, 1,501 tests: 950 s with three and 948 s with four, so the suite is CPU-bound; 662 s with three
# once Shipyard's modules were compiled once (`compile`, above) instead of in every process). Tests that
# share a heavy fixture, such as the container daemon, are one xdist group and run on one worker.
TEST_WORKERS ?= 3

# mypy (one process, one core) checks while the tests run: its report comes after theirs, and either failing fails.
test: lint compile
	@echo "==> mypy (in the background; its report follows the tests')"
	@$(VENV)/bin/mypy > $(VENV)/mypy.log 2>&1 & mypy=$$!; \
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup; tests=$$?; \
	wait $$mypy; typed=$$?; echo "==> mypy"; cat $(VENV)/mypy.log; \
	[ $$tests -eq 0 ] && [ $$typed -eq 0 ]

bench: $(DEV_STAMP)
	$(PY) bench/tracking.py
	$(PY) bench/data.py
	$(PY) bench/serving.py
	$(PY) bench/serving_abuse.py
	$(PY) bench/guards.py
	$(PY) bench/verify_bench.py
	$(PY) bench/image_bench.py
	$(PY) bench/governance.py
	$(PY) bench/team_store.py
	$(PY) bench/monitoring.py

clean:
	rm -rf $(VENV) .shipyard .pytest_cache .ruff_cache
