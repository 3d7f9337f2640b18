# The two commands of the README: `make demo` runs the switch's demo on the
# embedded default; `make test` passes the tests. Both set everything up first.
# demo, serve, bench, stages, sizing and chaos pass ARGS to their command, since make
# takes options after the target as its own: `make bench ARGS=--quick`,
# `make stages ARGS="--batch 16"`.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: install demo serve test protos lint bench stages sizing chaos clean

$(STAMP): pyproject.toml setup.py $(wildcard switch/*/_*.pyx switch/*/_*.pxd switch/*/*/_*.pyx)
	@echo "installing into $(VENV) with its C extensions and the development tools (first run: about a minute)..."
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/switch demo $(ARGS)

serve: install
	$(VENV)/bin/switch serve $(ARGS)

# Twice: with the Cython modules, then with their pure-Python twins (the gates that
# read source, not behaviour, run once).
test: install
	$(PY) -m pytest -q
	SWITCH_NO_EXTENSIONS=1 $(PY) -m pytest -q -p no:cacheprovider \
		--ignore=tests/test_quality.py --ignore=tests/test_codegen.py

protos: install
	$(PY) protos/generate.py

lint: install
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy && $(VENV)/bin/lint-imports

bench: install
	$(PY) loadtests/capacity.py $(ARGS)

stages: install
	$(PY) loadtests/stages.py $(ARGS)

sizing: install
	$(PY) loadtests/sizing.py $(ARGS)

# Faults under load (tests/faults/): 10 rounds of a PostgreSQL cut, hold and delay, a
# Redis kill -9 and a worker kill -9, then a table; exit status 1 on any violation.
chaos: install
	$(PY) -m tests.faults.chaos $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info switch/*/_*.c switch/*/_*.so switch/*/_*.html switch-data
