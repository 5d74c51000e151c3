# Every target makes .venv itself (install) and can be run again at no cost.
# 'make test PY=python3' uses that interpreter as it is and installs nothing: for a machine that
# cannot fetch packages but has PyTorch and the test tools (a GPU machine); identikit from src/.
PYTHON ?= python3
VENV := .venv
PY ?= $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The suite runs in parallel where there are cores to spare (pytest-xdist): a worker per two
# cores, two threads each, so that workers do not fight over cores; serially on fewer than 4.
CORES := $(shell nproc 2>/dev/null || echo 1)
WORKERS := $(shell expr $(CORES) / 2)
PARALLEL := $(shell [ $(WORKERS) -ge 2 ] && echo "-n $(WORKERS)")

.PHONY: install demo test bench lint

ifeq ($(PY),$(VENV)/bin/python)
install: $(STAMP)
FETCH := yes
else
export PYTHONPATH := $(CURDIR)/src
install:
	@$(PY) -c "import torch, pytest" || (echo "$(PY) lacks torch or pytest" && exit 2)
FETCH :=
endif

# torch first, pinned: a plain 'torch' requirement would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

demo: install
	$(PY) -m identikit demo

# System packages some tests use (Debian's, never a downloaded browser); a test skips, saying
# why, where they cannot be installed.
test: install
ifdef FETCH
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium) \
		>/dev/null 2>&1 || echo "chromium could not be installed: the browser test will skip"
	@test -d /usr/share/datasets/fashion-mnist || (apt-get install -y -qq dataset-fashion-mnist \
		|| (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist)) >/dev/null 2>&1 \
		|| echo "dataset-fashion-mnist could not be installed: its test will skip"
	@# Ray (identikit[ray]) for the cluster's tests only: the demo has no use for its 280 MB.
	$(PY) -m pip install -q --disable-pip-version-check ray==2.58.0
endif
	@n="$(PARALLEL)"; $(PY) -c "import xdist" 2>/dev/null || n=""; \
		if [ -n "$$n" ]; then export OMP_NUM_THREADS=2; fi; \
		echo "$(PY) -m pytest -q $$n"; $(PY) -m pytest -q $$n
	@# Ray's tests: in a network namespace of their own, where Ray talks on 127.0.0.1 alone.
	@if unshare --net true 2>/dev/null && command -v ip >/dev/null; then \
		unshare --net sh -c 'ip link set lo up && exec $(PY) -m pytest -q -m ray'; \
	else echo "no private network namespace (unshare --net, ip): the Ray tests skip"; fi

bench: install
	$(PY) -m pip install -q --disable-pip-version-check ray==2.58.0
	$(PY) benchmarks/run.py

lint: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy
