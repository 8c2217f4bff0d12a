# Everything a new user needs is installed from here: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

LOCK   := requirements.lock
# The lock holds every extra, for every Python Dealflow supports (markers say which).
LOCK_COMPILE = $(BIN)/uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 \
	--custom-compile-command "make lock" --quiet

.PHONY: demo test lint lock lock-check install messages browser bench bench-finance bench-load bench-in-flight clean

# Exactly the versions in requirements.lock, the ones CI tested: a new release of any
# dependency reaches a fresh install only through `make lock` and a commit.
$(STAMP): pyproject.toml $(LOCK)
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Dealflow needs Python 3.11 or newer"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --constraint $(LOCK) -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

## demo: start the local stack (Prefect server, deal runner, web service, mail catcher)
demo: $(STAMP)
	$(BIN)/dealflow stack up

## test: lint, type-check, the whole suite on embedded defaults, then the end-to-end
## tests again on the production path (docs/deployment.md: PostgreSQL, a process work
## pool with two workers, the web service as two processes)
test: lint browser
	$(BIN)/pytest --durations=15
	DEALFLOW_TEST_STACK=postgres $(BIN)/pytest -m stack --durations=15

## browser: Debian's chromium for the browser tests (installed when make runs as root)
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	      apt-get install -y -qq --no-install-recommends chromium; \
	  else \
	    echo "chromium is missing (apt-get install chromium): browser tests will be skipped"; \
	  fi; }

## lock: refresh requirements.lock to the newest versions pyproject.toml allows (then
## run `make test` and the benchmarks, and commit both files)
lock: $(STAMP)
	$(LOCK_COMPILE) --upgrade -o $(LOCK)

## lock-check: fail when requirements.lock no longer satisfies pyproject.toml, or when
## .venv holds other versions than the lock
lock-check: $(STAMP)
	@tmp=$$(mktemp) && cp $(LOCK) $$tmp && $(LOCK_COMPILE) -o $$tmp && \
	  if diff -u $(LOCK) $$tmp; then rm -f $$tmp; else rm -f $$tmp; \
	    echo "requirements.lock disagrees with pyproject.toml: run 'make lock' and commit it" >&2; exit 1; fi
	@if $(BIN)/pip install --dry-run --no-deps -r $(LOCK) 2>/dev/null | grep "Would install"; then \
	  echo "$(VENV) differs from requirements.lock (above): rm -rf $(VENV) and run make again" >&2; exit 1; fi

## messages: extract the texts to translate into locale/messages.pot and merge them into
## each language's catalog (locale/<language>/LC_MESSAGES/messages.po); then translate
## the new entries (a test fails while one has no translation, or a fuzzy one)
messages: $(STAMP)
	$(BIN)/pybabel -q extract -F locale/babel.cfg -k translate:2 -k Words --no-location \
	  --sort-output --project Dealflow --omit-header --no-wrap -o locale/messages.pot .
	$(BIN)/pybabel -q update -i locale/messages.pot -d locale --no-wrap \
	  --ignore-obsolete

lint: $(STAMP) lock-check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

## bench: approval-to-next-email latency against a bare Prefect suspend/resume
bench: $(STAMP)
	$(BIN)/python bench/approval_latency.py

## bench-finance: the payment check over 100,000 open invoices on PostgreSQL and SQLite
## against one plain read and as many emails over one SMTP connection
bench-finance: $(STAMP)
	$(BIN)/python bench/payment_check.py

## bench-load: 1,000 deals submitted and approved over HTTP on the production path (two
## workers) against a bare suspend/resume flow on the same pool; DEALS=N for fewer
bench-load: $(STAMP)
	$(BIN)/python bench/load.py --deals $(or $(DEALS),1000)

## bench-in-flight: 10,000 suspended deals held by one server; workers' memory at each step
bench-in-flight: $(STAMP)
	$(BIN)/python bench/in_flight.py

clean:
	rm -rf $(VENV) .dealflow .pytest_cache .mypy_cache .ruff_cache
