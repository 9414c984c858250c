# Two entry points: `make build` builds the dataset into outputs/dataset from the committed records
# (rows whose records are missing or stale are listed and left out), `make test` runs the tests.
# Both create .venv first. Without a GPU, torch is pinned to the local CPU wheel (never an
# unpinned torch: that pulls several GB of CUDA packages), and triton to 3.8.0, whose
# interpreter runs the seed kernels on CPU tensors.

VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: build test

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "torch==2.13.0" "triton==3.8.0"
	$(PY) -m pip install -q -e ".[test]"
	touch $@

build: $(VENV)/.installed
	$(VENV)/bin/kernel-prompts build --allow-missing

test: $(VENV)/.installed
	$(PY) -m pytest -n auto --dist loadgroup
