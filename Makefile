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

# System packages some tests use (Debian's, never a downloaded browser); a test skips, saying
# why, where they cannot be installed.
test: install
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium) \
		>/dev/null 2>&1 || echo "chromium could not be installed: the browser test will skip"
	@test -d /usr/share/datasets/fashion-mnist || (apt-get install -y -qq dataset-fashion-mnist \
		|| (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist)) >/dev/null 2>&1 \
		|| echo "dataset-fashion-mnist could not be installed: its test will skip"
	@# Ray (identikit[ray]) for the cluster's tests only: the demo has no use for its 280 MB.
	$(PY) -m pip install -q --disable-pip-version-check ray==2.58.0
	$(PY) -m pytest -q
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
