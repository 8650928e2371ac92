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
PIP_FLAGS := --quiet --disable-pip-version-check $(if $(CONSTRAINTS),-c $(CONSTRAINTS))
# .venv's packages are installed by uv (pinned here, itself installed into .venv by pip): the
# same constraints, the same set of packages as pip, in about 40 s where pip takes about 85 s
# (2-core VM, 2026-12-07). Byte-compiled at install, as pip does: where Python may not write
# its caches (PYTHONDONTWRITEBYTECODE, set on the 2-core VM) every test process would
# otherwise compile JAX's modules again (the cold suite's pytest: 1,017 s without; 977 s with,
# `make test` compiling the project's own modules too).
# uv reads the package index from its own settings (UV_INDEX_URL, UV_EXTRA_INDEX_URL,
# uv.toml), not from pip's: where uv cannot be installed or cannot install (an index only pip
# is set up for), pip installs instead, after a line that says so; `make INSTALLER=pip test`
# uses pip alone from the start.
INSTALLER ?= uv
UV_VERSION := 0.13.9
PIP_ONLY := $(PY) -m pip install $(PIP_FLAGS)
TEST_EXTRAS := dev,synthetic,postgres,cluster,export,opensmile
ifeq ($(INSTALLER),uv)
INSTALL_TOOL := $(VENV)/bin/uv
UV_INSTALL := $(INSTALL_TOOL) pip install --quiet --compile-bytecode --python $(PY) $(if $(CONSTRAINTS),-c $(CONSTRAINTS))
PIP_INSTALL = $(UV_INSTALL) $(1) || { echo "make: uv could not install $(1); installing with pip"; $(PIP_ONLY) $(1); }
else ifeq ($(INSTALLER),pip)
INSTALL_TOOL := $(PY)
PIP_INSTALL = $(PIP_ONLY) $(1)
else
$(error INSTALLER=$(INSTALLER): use uv or pip)
endif

.PHONY: install demo test lint format bench package-check clean

# The project (with the synthetic corpus generator) in .venv, nothing run.
install: $(VENV)/.installed-demo

# The main command on the embedded synthetic corpus (generated on first use): the quick
# hidden_sizes sweep (LSTM-SA and ResLSTM-SA at 4 sizes), ending with the Pareto front.
demo: $(VENV)/.installed-demo
	$(PY) -m sweeps.run --space hidden_sizes

bench: $(VENV)/.installed-test
	$(PY) -m experiments.bench

# The suite starts many Python processes (the commands it runs, their workers). Where
# Python may not write its bytecode caches (PYTHONDONTWRITEBYTECODE, set on the 2-core VM) each
# of them compiled the project's modules again (0.2 s a process); compileall writes them once.
test: $(VENV)/.installed-test
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m compileall -q reslstm_jax sweeps experiments tests > /dev/null
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist load --maxschedchunk 1

lint: $(VENV)/.installed-test
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(VENV)/.installed-test
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

# The project needs Python >= 3.11 (pyproject's requires-python): an older one is one line.
$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "make: \
	$(PYTHON) is Python $(PYVER); reslstm-jax needs Python >= 3.11 (make PYTHON=python3.11 ...)"; \
	exit 2; }
	$(PYTHON) -m venv $(VENV)

$(VENV)/bin/uv: | $(PY)
	$(PIP_ONLY) uv==$(UV_VERSION) || echo "make: uv could not be installed; pip installs instead"

# A Python with no constraints file gets the newest releases within pyproject's ranges: said.
UNPINNED_NOTE := $(if $(CONSTRAINTS),,@echo "make: no requirements/constraints-py$(PYVER).txt: \
installing the newest releases within pyproject.toml's ranges, not a verified set")

$(VENV)/.installed-demo: pyproject.toml $(CONSTRAINTS) | $(INSTALL_TOOL)
	$(UNPINNED_NOTE)
	$(call PIP_INSTALL,-e '.[synthetic]')
	touch $@

$(VENV)/.installed-test: pyproject.toml $(CONSTRAINTS) | $(INSTALL_TOOL)
	$(UNPINNED_NOTE)
	$(call PIP_INSTALL,-e '.[$(TEST_EXTRAS)]')
	touch $@

# The package as a user gets it, with neither .venv nor the checkout: pypa/build (in a venv of its
# own) builds the sdist and, from it, the wheel; a fresh venv installs the wheel with the
# `synthetic` extra (the constraints of this Python); then, from a folder outside the checkout,
# the modules must come from that venv and the commands run, ending with a one-trial sweep on
# the synthetic corpus. Corpus, feature cache and run locks go to the same temporary folder,
# removed at the end. A few minutes (it installs JAX); tests/test_packaging.py checks the
# archives' contents within the suite.
package-check:
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; set -x; \
	$(PYTHON) -m venv "$$tmp/build-venv"; \
	"$$tmp/build-venv/bin/python" -m pip install $(PIP_FLAGS) build; \
	"$$tmp/build-venv/bin/python" -m build --outdir "$$tmp/dist" .; \
	$(PYTHON) -m venv "$$tmp/venv"; \
	"$$tmp/venv/bin/python" -m pip install $(PIP_FLAGS) \
		"$$(echo "$$tmp"/dist/reslstm_jax-*.whl)[synthetic]"; \
	mkdir "$$tmp/elsewhere"; cd "$$tmp/elsewhere"; \
	export RESLSTM_JAX_DATA="$$tmp/data" RESLSTM_JAX_CACHE="$$tmp/features" \
		RESLSTM_JAX_LOCKS="$$tmp/locks"; \
	"$$tmp/venv/bin/python" -c 'import sys, reslstm_jax, sweeps, experiments as e; \
		bad = [m.__file__ for m in (reslstm_jax, sweeps, e) if not m.__file__.startswith(sys.prefix)]; \
		sys.exit(f"not from the venv: {bad}" if bad else 0)'; \
	"$$tmp/venv/bin/python" -m reslstm_jax.models --help > /dev/null; \
	"$$tmp/venv/bin/python" -m sweeps.run --help > /dev/null; \
	"$$tmp/venv/bin/python" -m experiments.report --help > /dev/null; \
	"$$tmp/venv/bin/python" -m sweeps.run --space hidden_sizes --trials 1 --epochs 1 \
		--no-progress --wandb disabled --no-latency --out "$$tmp/sweep"; \
	test -s "$$(echo "$$tmp"/sweep/*/pareto.csv)"; \
	set +x; echo "package-check: passed"

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .hypothesis
