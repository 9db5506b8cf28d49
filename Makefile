.DEFAULT_GOAL := help
.PHONY: help demo test test-fast lint docs docs-serve refresh require-uv

UV ?= uv
DOCS_PORT ?= 8001
DEMO_DIR ?= build/demo

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# Runs uv rather than looking it up: a pyenv shim exists for every command and fails where the
# current Python lacks uv.
require-uv:
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	@$(UV) --version >/dev/null 2>&1 || { \
	  echo "error: '$(UV) --version' still fails after installing uv with python3 -m pip." >&2; \
	  echo "  Name a uv that runs: make $(MAKECMDGOALS) UV=/path/to/uv" >&2; \
	  exit 1; }

demo: require-uv ## Generate a demo project in build/demo and run it (API and scheduler; Ctrl-C stops)
	rm -rf $(DEMO_DIR)
	$(UV) run --frozen cookiecutter . --no-input --output-dir $(DEMO_DIR)
	$(MAKE) -C $(DEMO_DIR)/my-scheduler-service run

test: require-uv ## Run every template test: the fast tier (in parallel), then the slow tier
	$(UV) run --frozen pytest -m "not slow" -n auto
	$(UV) run --frozen pytest -m slow

test-fast: require-uv ## Run only the fast tier, spread over the cores
	$(UV) run --frozen pytest -m "not slow" -n auto

lint: require-uv ## Lint and typecheck the template's own code (hooks, tests, scripts)
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy

docs: require-uv ## Build the template's documentation site into site/ (fails on any warning)
	NO_MKDOCS_2_WARNING=1 $(UV) run --frozen mkdocs build --strict

docs-serve: require-uv ## Serve the template's documentation at http://127.0.0.1:$(DOCS_PORT) (DOCS_PORT=8002)
	NO_MKDOCS_2_WARNING=1 $(UV) run --frozen mkdocs serve --dev-addr 127.0.0.1:$(DOCS_PORT)

refresh: require-uv ## Regenerate the project template's uv.lock and .env.example
	$(UV) run --frozen python scripts/refresh_generated_files.py
