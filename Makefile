# The two commands: `make up` (the local stack with a demo cluster) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
export MYSQLOPS_HOME ?= $(CURDIR)/.mysqlops

.PHONY: up down clean test lint setup crds

setup:
	@bash scripts/setup.sh

up: setup
	@$(VENV)/bin/mysqlops up -f examples/demo-cluster.yaml

down:
	@if [ -x $(VENV)/bin/mysqlops ]; then $(VENV)/bin/mysqlops down; fi

clean: down
	rm -rf $(MYSQLOPS_HOME)

test: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy

# The CRDs the chart installs, generated from the api/ models (tests/unit/test_crd.py fails when
# the committed files differ from what the models generate).
crds: setup
	$(VENV)/bin/mysqlops crd --output-dir charts/mysqlops/crds
