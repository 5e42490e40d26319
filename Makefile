# Two commands on a fresh machine: `make demo` and `make test`. Both set up the virtualenv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install test unit integration demo bench pyairbyte-demo clean

$(STAMP): setup.py pyproject.toml
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

# PyAirbyte is not a dependency: it gets a virtualenv of its own, with this package installed beside it.
PYAB := .venv-pyairbyte
pyairbyte-demo:
	$(PYTHON) -m venv $(PYAB)
	$(PYAB)/bin/python -m pip install --quiet --upgrade pip
	$(PYAB)/bin/python -m pip install --quiet airbyte -e .
	printf '#!/bin/sh\nexec "%s/bin/python" "%s/demo/downloads_source.py" "$$@"\n' "$(CURDIR)/$(PYAB)" "$(CURDIR)" \
		> $(PYAB)/bin/downloads-demo-source
	chmod +x $(PYAB)/bin/downloads-demo-source
	AIRBYTE_OFFLINE_MODE=1 DO_NOT_TRACK=1 $(PYAB)/bin/python demo/pyairbyte_demo.py

clean:
	rm -rf $(VENV) $(PYAB) build *.egg-info .pytest_cache
