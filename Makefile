# Every target makes .venv itself (install) and can be run again at no cost.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test bench lint

install: $(STAMP)

# torch first, pinned: a plain 'torch' requirement would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

demo: install
	$(VENV)/bin/identikit demo

test: install
	$(PY) -m pytest -q

bench: install
	$(PY) benchmarks/run.py

lint: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy
