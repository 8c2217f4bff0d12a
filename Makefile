# Everything a new user needs is installed from here: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint install bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Dealflow needs Python 3.11 or newer"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

## demo: start the local stack (Prefect server, deal runner, web service, mail catcher)
demo: $(STAMP)
	$(BIN)/dealflow stack up

## test: lint, type-check, the whole suite on embedded defaults, then the end-to-end
## tests again on the production path (Prefect and Dealflow on PostgreSQL)
test: lint
	$(BIN)/pytest
	DEALFLOW_TEST_STACK=postgres $(BIN)/pytest -m stack

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## bench: approval-to-next-email latency against a bare Prefect suspend/resume
bench: $(STAMP)
	$(BIN)/python bench/approval_latency.py

clean:
	rm -rf $(VENV) .dealflow .pytest_cache .mypy_cache .ruff_cache
