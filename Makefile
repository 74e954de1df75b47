# One entry point for everything: a fresh machine needs only Python 3.11+ and make.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.12 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements/*.txt | sha256sum | cut -c1-12)

.PHONY: venv test lint

venv: $(STAMP)

$(STAMP): requirements/dev.txt requirements/runtime.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements/dev.txt
	rm -f $(VENV)/.installed-* && touch $@

test: venv
	$(PY) -m pytest -q

lint: venv
	$(VENV)/bin/ruff check layers functions training tools tests bench
	$(VENV)/bin/mypy layers/shared/python/leadscore functions
