# `make demo` and `make test` create .venv when it is missing, install the project with the
# extras they need, then run. Installs use the constraints file verified for this Python
# (requirements/constraints-py3.X.txt) when there is one, so every machine gets the same set.
PYTHON ?= python3
# test processes (pytest-xdist): one per core by default (the session fixtures that are costly,
# such as the trained run of tests/conftest.py, are built once for all of them). Tests are
# handed out one at a time (`--maxschedchunk 1`): xdist's default first hands each process a
# quarter of its share in one consecutive block, which put every long end-to-end test (they
# run first, tests/conftest.py) on one process: it ran 96 tests for 392 s while the other ran
# 679 and was idle after 234 s.
TEST_WORKERS ?= auto
VENV := .venv
PY := $(VENV)/bin/python
PYVER := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
CONSTRAINTS := $(wildcard requirements/constraints-py$(PYVER).txt)
PIP_INSTALL := $(PY) -m pip install --quiet --disable-pip-version-check $(if $(CONSTRAINTS),-c $(CONSTRAINTS))

.PHONY: install demo test lint format bench clean

# The project (with the synthetic corpus generator) in .venv, nothing run.
install: $(VENV)/.installed-demo

# The main command on the embedded synthetic corpus (generated on first use): the quick
# hidden_sizes sweep (LSTM-SA and ResLSTM-SA at 4 sizes), ending with the Pareto front.
demo: $(VENV)/.installed-demo
	$(PY) -m sweeps.run --space hidden_sizes

bench: $(VENV)/.installed-test
	$(PY) -m experiments.bench

test: $(VENV)/.installed-test
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist load --maxschedchunk 1

lint: $(VENV)/.installed-test
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(VENV)/.installed-test
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-demo: pyproject.toml $(CONSTRAINTS) | $(PY)
	$(PIP_INSTALL) -e '.[synthetic]'
	touch $@

$(VENV)/.installed-test: pyproject.toml $(CONSTRAINTS) | $(PY)
	$(PIP_INSTALL) -e '.[dev,synthetic,postgres,cluster,export,opensmile]'
	touch $@

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .hypothesis
