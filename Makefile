# Two commands on a fresh machine: `make demo` and `make test`. Both set up the virtualenv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install test unit integration demo bench clean

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[tests]'
	touch $(STAMP)

install: $(STAMP)

test: install
	$(BIN)/python -m pytest -q unit_tests integration_tests

unit: install
	$(BIN)/python -m pytest -q unit_tests

integration: install
	$(BIN)/python -m pytest -q integration_tests

demo: install
	$(BIN)/python demo/run_demo.py

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
