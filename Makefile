# SPDX-License-Identifier: Apache-2.0
# The README's two commands are scripts/run.sh and scripts/test.sh (they need
# no make, which a fresh Debian lacks); `make run` and `make test` call them.

VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: run test bootstrap lint pytest bench

## run: venv + install + the server on http://127.0.0.1:8080 (embedded defaults)
run:
	bash scripts/run.sh

## test: install what is missing, lint, then the whole suite
test:
	bash scripts/test.sh $(PYTEST_ARGS)

bootstrap:
	bash scripts/bootstrap.sh

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy attestor agent
	$(BIN)/lint-imports

# PYTEST_ARGS passes options through, e.g. make pytest PYTEST_ARGS='tests/unit -q'
pytest:
	bash scripts/pytest.sh $(PYTEST_ARGS)

## bench: each benchmark prints our figure next to the raw limit
bench:
	@set -e; for f in bench/bench_*.py; do \
	  [ -e "$$f" ] || { echo "no benchmarks in bench/"; exit 0; }; \
	  echo "== $$f"; $(BIN)/python "$$f"; \
	done
