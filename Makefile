# The two commands: `make demo` runs the whole system on its embedded defaults, `make test` runs
# every check. Both create .venv and install exactly the committed lock into it first
# (requirements.txt for the demo, requirements-dev.txt for the tests), then hazwatch
# itself without touching the index again. Versions change only through `make lock`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME_LOCK := requirements.txt
DEV_LOCK := requirements-dev.txt
RUNTIME_STAMP := $(VENV)/.installed-runtime
DEV_STAMP := $(VENV)/.installed-dev
# `make lock` takes the newest releases pyproject's ranges allow; `make lock UPGRADE=redis`
# upgrades one package (several: UPGRADE="redis fastapi"); `make lock UPGRADE=` keeps every pin
# that still fits (after an edit of pyproject.toml) and resolves only what changed.
UPGRADE ?= all
UV_COMPILE = $(BIN)/uv pip compile --universal --python-version 3.11 --generate-hashes --quiet \
	$(if $(filter all,$(UPGRADE)),--upgrade,$(foreach p,$(UPGRADE),--upgrade-package $(p)))

.PHONY: demo test services lint typecheck pytest bench venv lock clean

venv: $(DEV_STAMP)

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit("Python >= 3.11 is required, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	@$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
	  echo "python3 -m venv failed: on Debian/Ubuntu install python3-venv (apt-get install -y python3-venv)"; exit 1; }

# pip checks every file against the lock's hashes; --no-deps because the lock is already complete.
$(RUNTIME_STAMP): $(RUNTIME_LOCK) pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r $(RUNTIME_LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

$(DEV_STAMP): $(DEV_LOCK) pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r $(DEV_LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@ $(RUNTIME_STAMP)

demo: $(RUNTIME_STAMP)
	$(BIN)/hazwatch demo

services:
	@bash deploy/dev-services.sh

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(DEV_STAMP)
	$(BIN)/mypy

pytest: $(DEV_STAMP) services
	$(BIN)/pytest

test: services lint typecheck pytest

bench: $(DEV_STAMP) services
	$(BIN)/python bench/run.py

# Re-resolve both locks on purpose (see UPGRADE above); the dev lock is constrained by the runtime
# lock, so the demo and the tests run the same versions of what they share.
lock: $(DEV_STAMP)
	$(UV_COMPILE) pyproject.toml requirements/build.in -o $(RUNTIME_LOCK)
	$(UV_COMPILE) pyproject.toml requirements/build.in --extra dev -c $(RUNTIME_LOCK) -o $(DEV_LOCK)
	@echo "lock: review 'git diff requirements.txt requirements-dev.txt', run 'make test', commit the locks with the reason"

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
