# scitags-p4. `make help` lists the targets.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
SWITCH ?= $(if $(wildcard /opt/p4/bin/simple_switch_grpc),bmv2,soft)
ARGS ?=
PYTEST_ARGS ?=

.PHONY: help setup mininet-demo demo test test-fast bench p4 p4-check clean

help:
	@echo "make mininet-demo  set everything up (first run) and run the demo; ARGS=--interactive keeps the CLI"
	@echo "make setup         Debian packages, virtualenv, P4Runtime bindings (idempotent)"
	@echo "make test          the whole test suite (root: namespaces, Mininet)"
	@echo "make bench         benchmarks: figures on stdout and in bench-results/"
	@echo "make p4            compile p4src/ for v1model (p4c-bm2-ss) and Tofino 1/2 (bf-p4c) where installed"
	@echo "make clean         remove caches; keeps the virtualenv"

$(PY): requirements.txt pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	@touch $(PY)

setup:
	bash scripts/setup.sh

mininet-demo: $(PY)
	$(PY) lab/demo.py --switch $(SWITCH) $(ARGS)

demo: mininet-demo

test: $(PY)
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(PY)
	@mkdir -p bench-results
	$(PY) bench/run_all.py --out-dir bench-results

p4: $(PY)
	$(PY) tools/p4build.py

p4-check:
	python3 tools/p4build.py --check

clean:
	rm -rf .pytest_cache .hypothesis bench-results
	find . -name __pycache__ -type d -prune -not -path './$(VENV)/*' -exec rm -rf {} +
