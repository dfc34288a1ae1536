# alignprune-exp: `make demo` runs the embedded default, `make test` the test suite.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.install.stamp
DEMO_DIR ?= results/demo
# make test TEST_WORKERS=0 runs the suite in one process (pytest-xdist workers otherwise)
TEST_WORKERS ?= 2
LINT_PATHS := src tests scripts examples train.py

.DEFAULT_GOAL := help
.PHONY: help install demo lint test test-fast show-config wheel check-wheel clean clean-results

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## .*$$' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip setuptools wheel
	$(PY) -m pip install -e ".[dev,launchers,lightning]"
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install the package (editable, with dev extras) once

demo: $(STAMP) ## Digits + sym0.5 noise: InfoBatch vs InfoBatch+DAS at 30% pruning; prints accuracy, ratio, AUROC
	$(PY) train.py +experiment=demo_digits results_dir=$(DEMO_DIR) progress_bar=false
	$(PY) scripts/summarize_runs.py $(DEMO_DIR)/runs.csv --experiment demo_digits --last 2

lint: $(STAMP) ## Lint: ruff check, ruff format --check and the import contracts of pyproject.toml (lint-imports)
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/lint-imports

test: $(STAMP) ## Run the whole test suite in TEST_WORKERS processes (pytest-xdist; about 13 minutes on 2 CPU cores)
	$(PY) -m pytest -n $(TEST_WORKERS)

test-fast: $(STAMP) ## Skip the end-to-end CLI runs
	$(PY) -m pytest -n $(TEST_WORKERS) -m "not slow"

wheel: $(STAMP) ## Build the wheel into dist/ (the configs ship inside it)
	rm -rf build dist
	$(PY) -m pip wheel -q --no-deps --no-build-isolation -w dist .

check-wheel: wheel ## Install the wheel into a fresh venv outside the checkout and train from a temporary directory
	bash .ci/check_wheel.sh dist/alignprune_exp-*.whl $(PY)

show-config: $(STAMP) ## Print the composed default config
	$(PY) train.py --cfg job

clean-results: ## Remove local run folders (keeps committed studies under results/<study>/)
	rm -rf results/runs results/multirun results/demo results/runs.csv results/runs.csv.lock

clean: ## Remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .ruff_cache .import_linter_cache src/*.egg-info build dist
