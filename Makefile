# dativo-ingest: `make demo` runs the Meltano pipeline on examples/ into the embedded Iceberg
# catalog and prints what landed; `make test` runs lint and the whole test suite (.ci/run calls it).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEV_STAMP := $(VENV)/.dativo-dev-installed

MELTANO_ENV ?= dev
export MELTANO_SEND_ANONYMOUS_USAGE_STATS := false
export MELTANO_CLI_DISABLE_VERSION_CHECK := 1
MELTANO := $(VENV)/bin/meltano --environment=$(MELTANO_ENV)
LOCK_FILES := plugins/extractors/tap-dativo-csv--dativo.lock plugins/loaders/target-dativo-iceberg--dativo.lock
MELTANO_STAMP := .meltano/.dativo-installed

# Third-party Singer taps the tests pipe into our target, each in its own venv (their singer-sdk
# pins may conflict with ours).
TAPS_DIR := .venv-taps
TAP_JSONL := $(TAPS_DIR)/tap-jsonl/bin/tap-jsonl
TAP_JSONL_VERSION := 0.3.1

.PHONY: help install demo test lint format lock check-lock taps system-deps clean distclean

help:
	@echo "make demo       install, run tap-dativo-csv -> target-dativo-iceberg on examples/, show what landed"
	@echo "make test       install test deps, ruff format --check, ruff check, pytest"
	@echo "make lock       regenerate plugins/ lock files + definitions, meltano.yml declarations, README settings tables"
	@echo "make format     ruff format + ruff check --fix"
	@echo "make clean      remove landed data, Meltano state/venvs and caches (distclean: venvs too)"

$(PY):
	$(PYTHON) -m venv $(VENV)

# Re-runs only when pyproject.toml changes (or the venv is new): fast when already installed.
$(DEV_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -qq --disable-pip-version-check -e '.[dev]'
	touch $@

install: $(DEV_STAMP)

# Plugin venvs under .meltano/ (pip backend, see meltano.yml). `meltano install` always
# reinstalls, so it runs only when the project, meltano.yml or a lock file changed.
$(MELTANO_STAMP): $(DEV_STAMP) pyproject.toml meltano.yml $(LOCK_FILES)
	$(MELTANO) install
	mkdir -p $(@D) && touch $@

# Write-audit-publish: the run lands on the tenant's branch (main untouched), then the branch is
# published (main fast-forwarded; `auto_publish: true` does this after every audited run).
demo: $(MELTANO_STAMP)
	$(MELTANO) run tap-dativo-csv target-dativo-iceberg
	@echo "== landed on the tenant's branch; main is untouched until the branch is published"
	@# --unsafe: secrets (prod) go through the pipe to show_landed.py / dativo, which never print them
	$(MELTANO) config --unsafe print target-dativo-iceberg | $(PY) scripts/show_landed.py --config -
	@echo "== publish: main fast-forwards to the branch"
	$(MELTANO) config --unsafe print target-dativo-iceberg | $(VENV)/bin/dativo branch publish --config /dev/stdin
	$(MELTANO) config --unsafe print target-dativo-iceberg | $(PY) scripts/show_landed.py --config -
	@echo "more: $(VENV)/bin/dativo tables | rejected TABLE | branch diff | state show  (docs/dativo-cli.md)"

$(TAP_JSONL):
	rm -rf $(TAPS_DIR)/tap-jsonl
	$(PYTHON) -m venv $(TAPS_DIR)/tap-jsonl
	$(TAPS_DIR)/tap-jsonl/bin/python -m pip install -qq --disable-pip-version-check 'tap-jsonl==$(TAP_JSONL_VERSION)'

taps: $(TAP_JSONL)

# System packages of the real components the tests start (docs: design §7): PostgreSQL through
# Debian's pg_virtualenv. Installed with apt-get when missing and running as root (CI).
system-deps:
	@if ! command -v pg_virtualenv >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing postgresql (pg_virtualenv) with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql postgresql-common; \
	  else \
	    echo "pg_virtualenv not found: install Debian's postgresql + postgresql-common (or set DATIVO_TEST_PG_URL)" >&2; \
	  fi; \
	fi

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

format: $(DEV_STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: $(DEV_STAMP) $(TAP_JSONL) system-deps lint
	$(VENV)/bin/pytest

lock: $(DEV_STAMP)
	$(PY) scripts/generate_lock_files.py
	$(PY) scripts/readme_settings.py

check-lock: $(DEV_STAMP)
	$(PY) scripts/generate_lock_files.py --check
	$(PY) scripts/readme_settings.py --check

clean:
	rm -rf .local .meltano output .pytest_cache .ruff_cache build dist
	find . -name __pycache__ -type d -not -path './.venv*' -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) $(TAPS_DIR) *.egg-info
