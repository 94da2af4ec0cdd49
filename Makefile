# The README's two commands: `make demo` and `make test`. Each installs what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# moto's S3 server gets its own venv: botocore and kubernetes pin python-dateutil incompatibly.
MOTO_VENV ?= .venv-moto
MOTO_STAMP := $(MOTO_VENV)/.installed
OUT ?= out/demo

.PHONY: demo demo-plan crds crds-check test e2e lint typecheck contracts unit bench clean venv

venv: $(STAMP)

# torch is installed first, by its exact pin, so nothing later can pull the CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[torch,tensorflow,dev]'
	touch $(STAMP)

$(MOTO_STAMP):
	$(PYTHON) -m venv $(MOTO_VENV)
	$(MOTO_VENV)/bin/python -m pip install -q 'moto[server]==5.2.5'
	touch $(MOTO_STAMP)

# The main job: the digits pipeline trained, planned, exported, served by real processes over
# an embedded nats-server, and measured against the planner's prediction.
demo: $(STAMP)
	$(BIN)/inferedge run -f examples/digits-pipeline.yaml -o $(OUT)

# The planner on its own, on a full-size ResNet-50 (profiles take a few minutes on 2 cores).
demo-plan: $(STAMP)
	@mkdir -p $(OUT)/plan
	$(BIN)/inferedge profile resnet50 --input-shape 3,224,224 --device-name cloud-cpu \
	    --repeats 5 -o $(OUT)/plan/resnet50-cloud.json
	$(BIN)/inferedge profile resnet50 --input-shape 3,224,224 --device-name jetson-emulated \
	    --emulate-slowdown 6 --repeats 5 -o $(OUT)/plan/resnet50-edge.json
	$(BIN)/inferedge plan --edge $(OUT)/plan/resnet50-edge.json \
	    --cloud $(OUT)/plan/resnet50-cloud.json --compare --edge-exits 2 --cloud-exits 1 \
	    --bandwidth-mbps 20 --rtt-ms 20 --deadline-ms 250

# CRDs and their reference are generated from the pydantic models (tests fail on drift).
CRD_ARGS := --out crds --out charts/inferedge/crds --docs docs/crd-reference.md
crds: $(STAMP)
	$(PY) -m inferedge.api.crd $(CRD_ARGS)

crds-check: $(STAMP)
	$(PY) -m inferedge.api.crd --check $(CRD_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check operator tests benchmarks docs
	$(BIN)/ruff format --check operator tests benchmarks docs

typecheck: $(STAMP)
	$(BIN)/mypy

contracts: $(STAMP)
	$(BIN)/lint-imports

unit: $(STAMP) $(MOTO_STAMP)
	INFEREDGE_TEST_MOTO_SERVER=$(abspath $(MOTO_VENV))/bin/moto_server $(BIN)/pytest --ignore=tests/e2e

test: lint typecheck contracts unit

# Quick feedback while editing (about 30 s on 2 cores): lint, import contracts, and the core,
# api and chart tests, which train nothing and start no server. The test paths are listed
# once, here: a renamed folder then fails loudly instead of silently leaving the tier, and
# pytest does not import torch and TensorFlow to collect tests it would only deselect.
FAST_TESTS := tests/core tests/api tests/chart tests/cli/test_plan_command.py \
    tests/local/test_measured.py tests/dnn/test_energy.py tests/test_docs_and_benchmarks.py \
    tests/test_import_cycles.py
.PHONY: test-fast
test-fast: lint contracts
	$(BIN)/pytest $(FAST_TESTS)

# Against a real cluster (kind, k3s): skipped unless INFEREDGE_E2E_KUBECONFIG is set.
e2e: $(STAMP)
	$(BIN)/pytest tests/e2e -v

bench: $(STAMP)
	$(PY) benchmarks/planner.py
	$(PY) benchmarks/runtime.py

clean:
	rm -rf $(VENV) $(MOTO_VENV) out .mypy_cache .pytest_cache .ruff_cache
