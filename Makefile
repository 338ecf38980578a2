# The project's commands. `make run` and `make test` work on a fresh clone with only
# python3 (>= 3.11) installed; see README.md.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
# Reinstall only when pyproject.toml is newer than the last install.
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
# Extra arguments for every pytest run, e.g. `make test PYTEST_ARGS="-x"`.
PYTEST_ARGS ?=
# pytest-xdist processes for the suites that run in parallel (SQLite and PostgreSQL; not
# the browser suite, whose studio test timed out once beside a second Chromium on two
# cores, nor the cluster and chaos suites, which start their own processes): one per
# core, at most 4. `make test JOBS=0` runs them in one process.
JOBS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); [ $$n -gt 4 ] && n=4; echo $$n)
XDIST := $(if $(filter 0 1,$(JOBS)),,-n $(JOBS))
CHROMIUM ?= /usr/bin/chromium

DEV_ENV := DEBUG=1 PATH="$(BIN):$$PATH"
PYTEST := $(DEV_ENV) scripts/pytest
TIMED := scripts/timed

.PHONY: help install translations run test test-sqlite test-quick test-pg test-cluster test-chaos test-security bench lint typecheck fmt clean

help:
	@echo "make run         set up (venv, install, migrate, demo users) and serve web + worker"
	@echo "make test        ruff, mypy, the whole suite on SQLite, then the database tests on PostgreSQL"
	@echo "make test-quick  the fast unit tests on SQLite, stop at the first failure"
	@echo "make test-pg     the database-sensitive tests (-m 'pg or e2e') on a throwaway PostgreSQL"
	@echo "make test-cluster  gunicorn x2 + qcluster x2 on PostgreSQL, Redis, moto S3 (-m cluster)"
	@echo "make test-chaos  the fault-injection suite (-m chaos) on a throwaway PostgreSQL"
	@echo "make test-security  one test per attack (tests/security/), then its browser test"
	@echo "make bench       the benchmarks of BENCHMARKS.md (locust, 1,000 in flight)"
	@echo "make lint        ruff check + ruff format --check + mypy"
	@echo "make typecheck   mypy (django-stubs) on accounts/, generations/, notifications/, veoproject/"
	@echo "make fmt         ruff format + ruff check --fix"
	@echo "make translations  update locale/*/LC_MESSAGES/django.po after changing marked strings"

$(VENV)/bin/pip:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is needed; set PYTHON=python3.x")'
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(VENV)/bin/pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# The compiled translations (README "Languages"): built from locale/*/LC_MESSAGES/*.po,
# never committed; rebuilt when a .po file is newer. Needs gettext's msgfmt.
MESSAGES := $(patsubst %.po,%.mo,$(wildcard locale/*/LC_MESSAGES/*.po))

$(MESSAGES): %.mo: %.po | $(STAMP)
	@if command -v msgfmt >/dev/null; then \
		$(DEV_ENV) python manage.py compilemessages --ignore '.venv' --verbosity 0; \
	else \
		echo "  msgfmt not found (apt-get install gettext): the pages stay in English."; \
		if [ "$${CI:-}" = "true" ]; then exit 1; fi; \
	fi

install: $(STAMP) $(MESSAGES)

# After changing marked strings: update every locale/*/LC_MESSAGES/django.po from the source
# (README "Languages"); then translate what is new and commit the .po files.
MAKEMESSAGES_IGNORE := .venv/* tests/* templates/admin/* templates/drf_spectacular/* \
	staticfiles/* static/* data/* test-artifacts/* bench/* scripts/* docs/*
translations: install
	$(DEV_ENV) python manage.py makemessages --all --no-location \
		$(foreach pattern,$(MAKEMESSAGES_IGNORE),--ignore '$(pattern)')

run: install
	$(DEV_ENV) python manage.py migrate --noinput
	$(DEV_ENV) python manage.py collectstatic --noinput --verbosity 0
	$(DEV_ENV) python manage.py seed_demo
	@echo
	@echo "  Serving http://$(HOST):$(PORT)/   (admin: http://$(HOST):$(PORT)/admin/)"
	@echo "  web (runserver) and worker (qcluster) run together; Ctrl-C stops both."
	@echo
	$(DEV_ENV) HOST=$(HOST) honcho --procfile Procfile.dev start --port $(PORT)

# --- tests --------------------------------------------------------------------------------

test: install
	@$(TIMED) "ruff check" $(BIN)/ruff check .
	@$(TIMED) "mypy" $(BIN)/mypy
	@$(TIMED) "tests on SQLite" $(MAKE) --no-print-directory test-sqlite
	@$(TIMED) "database tests on PostgreSQL" $(MAKE) --no-print-directory test-pg
	@$(TIMED) "cluster on one host" $(MAKE) --no-print-directory test-cluster
	@$(TIMED) "chaos suite on PostgreSQL" $(MAKE) --no-print-directory test-chaos

# The whole suite except chaos. The browser tests need Debian's chromium; they run in a
# pytest process of their own, because Playwright's sync API leaves an asyncio loop in the
# main thread, which makes Django refuse database access in any test that runs after them.
test-sqlite: install
	@if [ -x "$(CHROMIUM)" ]; then \
		$(PYTEST) -m "not chaos and not browser and not cluster" $(XDIST) $(PYTEST_ARGS) && \
		CHROMIUM="$(CHROMIUM)" $(PYTEST) -m "browser" $(PYTEST_ARGS); \
	else \
		echo; \
		echo "  ####################################################################"; \
		echo "  ##  $(CHROMIUM) not found: the BROWSER TESTS ARE SKIPPED.          "; \
		echo "  ##  Install Debian's chromium (apt-get install chromium) to run them."; \
		echo "  ####################################################################"; \
		echo; \
		if [ "$${CI:-}" = "true" ]; then echo "CI=true: failing."; exit 1; fi; \
		$(PYTEST) -m "not chaos and not browser and not cluster" $(XDIST) $(PYTEST_ARGS); \
	fi

test-quick: install
	$(PYTEST) -x -m "not browser and not chaos and not e2e and not cluster" $(PYTEST_ARGS)

# One test per attack from the outside review (SECURITY.md); also part of `make test`.
test-security: install
	$(PYTEST) tests/security -m "not browser" $(PYTEST_ARGS)
	@if [ -x "$(CHROMIUM)" ]; then \
		CHROMIUM="$(CHROMIUM)" $(PYTEST) -m browser tests/browser/test_polyglot_upload.py $(PYTEST_ARGS); \
	else \
		echo "  $(CHROMIUM) not found: the browser attack test is skipped."; \
		if [ "$${CI:-}" = "true" ]; then exit 1; fi; \
	fi

test-pg: install
	$(DEV_ENV) scripts/with-postgres scripts/pytest -m "(pg or e2e) and not chaos and not cluster" $(XDIST) $(PYTEST_ARGS)

# A cluster on one host (tests/cluster/test_cluster.py): two gunicorn and two qcluster
# processes on PostgreSQL, Redis (Debian's redis-server) and moto's S3, with the fake fal;
# one web and one worker SIGKILLed midway. About 2.5 minutes.
test-cluster: install
	$(DEV_ENV) scripts/with-postgres scripts/pytest -m cluster $(PYTEST_ARGS)

# Two qclusters, the fake fal injecting faults, one cluster SIGKILLed: on the ORM and the
# Redis broker (Debian's redis-server). Prints a summary table per run; ~3 minutes.
# Size with CHAOS_GENERATIONS (default 200); see tests/chaos/harness.py.
test-chaos: install
	$(DEV_ENV) scripts/with-postgres scripts/pytest -m chaos --show-capture=no $(PYTEST_ARGS)

# Benchmarks (figures in BENCHMARKS.md): API throughput with locust against gunicorn, then
# 1,000 generations in flight with two worker processes; each on its own PostgreSQL.
bench: install
	$(DEV_ENV) scripts/with-postgres python bench/api_throughput.py
	$(DEV_ENV) scripts/with-postgres python bench/inflight.py

# --- code style ---------------------------------------------------------------------------

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Configured in pyproject.toml ([tool.mypy]): the four packages, tests and migrations excluded.
typecheck: install
	$(BIN)/mypy

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .ruff_cache .mypy_cache .hypothesis
