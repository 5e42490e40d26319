# Two commands on a fresh machine: `make demo` and `make test`. Both set up the virtualenv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

# The locks: exact versions with their hashes, resolved for the image's and CI's platform. The image
# installs requirements.lock; the virtualenv installs requirements-tests.lock, which is the same
# versions plus the test extras, so the suite runs exactly what the image ships.
LOCK := requirements.lock
TESTS_LOCK := requirements-tests.lock
LOCK_PYTHON := 3.11
LOCK_PLATFORM := x86_64-unknown-linux-gnu
# uv only resolves the locks: it lives in a virtualenv of its own, never in .venv or the image.
UV_VERSION := 0.13.9
LOCK_VENV := .venv-lock

.PHONY: install lint spec test unit integration connector-test demo bench bench-readme pyairbyte-demo lock clean

# The venv is made anew (--clear) whenever a lock or the package metadata changes, so it holds the
# locked versions and nothing left over from an earlier install. The package goes in without its
# dependencies and without build isolation (setuptools is in the lock); `pip check` then fails if
# setup.py asks for something the lock does not provide.
$(STAMP): setup.py pyproject.toml $(LOCK) $(TESTS_LOCK)
	@$(PYTHON) -c 'import sys; v = "%d.%d" % sys.version_info[:2]; sys.exit(0 if v == "$(LOCK_PYTHON)" else \
		f"$(TESTS_LOCK) is resolved for Python $(LOCK_PYTHON), and $(PYTHON) is Python {v}: run make with PYTHON=python$(LOCK_PYTHON)")'
	$(PYTHON) -m venv --clear $(VENV)
	rm -rf destination_scarf.egg-info  # a stale one in the tree would shadow the installed metadata
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r $(TESTS_LOCK)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@$(BIN)/python -m pip check --disable-pip-version-check >/dev/null || { $(BIN)/python -m pip check; \
		echo "setup.py and $(TESTS_LOCK) disagree: run make lock"; exit 1; }
	touch $(STAMP)

install: $(STAMP)

# spec.json is generated from the options table (destination_scarf/options.py); a test keeps them equal.
spec: install
	$(BIN)/python -c 'import sys; from destination_scarf.options import spec_json; sys.stdout.write(spec_json())' \
		> destination_scarf/spec.json

# ruff and mypy with the project's rule sets (pyproject.toml); part of `make test`, so CI runs it too.
lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

test: install lint
	$(BIN)/python -m pytest -q unit_tests integration_tests

unit: install
	$(BIN)/python -m pytest -q unit_tests

integration: install
	$(BIN)/python -m pytest -q integration_tests

# The Airbyte CDK's own test command, `airbyte-cdk connector test`, offline (no network but loopback). The CDK takes
# the connector's name, and so its test class, from the folder's name, and the scenarios' configs from secrets/:
# the script runs it on a temporary folder named destination-scarf whose configs point at a local emulator. The
# suite's image tests are deselected: they need a Docker engine. (`make test` runs the same suite in-process.)
connector-test: install
	$(BIN)/python integration_tests/run_connector_test.py

demo: install
	$(BIN)/python demo/run_demo.py

# `make bench` prints the results (and keeps them in bench/results/, git-ignored); it never edits
# tracked files. `make bench-readme` runs the same benchmark and rewrites README.md's generated block.
# Options go through BENCH_ARGS, e.g. `make bench BENCH_ARGS="--runs 5 --variants realistic"`.
BENCH_ARGS ?=
bench: install
	$(BIN)/python -m bench $(BENCH_ARGS)

bench-readme: install
	$(BIN)/python -m bench --readme $(BENCH_ARGS)

# Regenerates both locks from setup.py's ranges plus pyproject.toml's build requirements (the image
# builds the wheel without isolation, so the build backend must be locked too). Versions already in
# a lock are kept while they still satisfy the ranges; `make lock UPGRADE=1` moves all to the newest.
# The test lock is constrained by the runtime lock, so the two agree on every shared package.
BUILD_REQUIRES = $(PYTHON) -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], sep="\n")'
UV_COMPILE = $(LOCK_VENV)/bin/uv pip compile --quiet --generate-hashes --python-version $(LOCK_PYTHON) \
	--python-platform $(LOCK_PLATFORM) $(if $(UPGRADE),--upgrade)
lock:
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BUILD_REQUIRES) | $(UV_COMPILE) setup.py - -o $(LOCK)
	$(BUILD_REQUIRES) | $(UV_COMPILE) --extra tests -c $(LOCK) setup.py - -o $(TESTS_LOCK)

# PyAirbyte is not a dependency: it gets a virtualenv of its own, with this package installed beside it. The
# version is pinned to the one the README's recipes were checked with (pip's resolver may otherwise settle on an
# older one); `make pyairbyte-demo PYAIRBYTE_VERSION=...` tries another. The demo also runs the README's preview
# recipe as the README writes it.
PYAB := .venv-pyairbyte
PYAIRBYTE_VERSION ?= 0.71.3
pyairbyte-demo:
	$(PYTHON) -m venv $(PYAB)
	$(PYAB)/bin/python -m pip install --quiet --upgrade pip
	$(PYAB)/bin/python -m pip install --quiet airbyte==$(PYAIRBYTE_VERSION) -e .
	printf '#!/bin/sh\nexec "%s/bin/python" "%s/demo/downloads_source.py" "$$@"\n' "$(CURDIR)/$(PYAB)" "$(CURDIR)" \
		> $(PYAB)/bin/downloads-demo-source
	chmod +x $(PYAB)/bin/downloads-demo-source
	AIRBYTE_OFFLINE_MODE=1 DO_NOT_TRACK=1 $(PYAB)/bin/python demo/pyairbyte_demo.py

clean:
	rm -rf $(VENV) $(PYAB) $(LOCK_VENV) build *.egg-info .pytest_cache
