# FSAR: `make run` serves the app with demo data; `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run run-indicators test lint bench mutate screenshots venv deps dev-deps browser clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Each install leaves a stamp in the virtualenv, so a second `make test` (or CI's two
# passes started at once) does not reinstall into a virtualenv another process is using:
# pip reinstalls the editable client every time, and two at once collide. A changed
# requirements file or client pyproject.toml makes the stamp stale; `make clean` drops it.
DEPS_STAMP := $(VENV)/.deps-installed
DEV_DEPS_STAMP := $(VENV)/.dev-deps-installed

deps: $(DEPS_STAMP)
dev-deps: $(DEV_DEPS_STAMP)

$(DEPS_STAMP): requirements.txt | $(PY)
	$(PIP) install --quiet -r requirements.txt
	touch $@

$(DEV_DEPS_STAMP): requirements.txt requirements-dev.txt clients/python/pyproject.toml | $(PY)
	$(PIP) install --quiet -r requirements-dev.txt
	touch $@ $(DEPS_STAMP)

# Debian's Chromium for the browser tests (Playwright must not download its own).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null; fi; }

# DEBUG is off unless set (fsar/settings.py): the laptop targets turn it on.
run: export DEBUG ?= 1
run: deps
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo
	@echo "Serving FSAR at http://$(HOST):$(PORT)/ (Ctrl-C stops it and the periodic-job loop)"
	@$(PY) manage.py run_periodic & PERIODIC=$$!; \
	  trap 'kill $$PERIODIC 2>/dev/null' EXIT INT TERM; \
	  $(PY) manage.py runserver $(HOST):$(PORT)

# The indicators on a simulated 60-day history (docs/indicators.md, "Try it"): its own
# SQLite file, recreated each time (simulate_oversight needs a fresh database), with a
# drifting model and a rubber-stamping member whose alerts are firing at the end (the
# simulated past's alert mails are dropped; the server's own go to the console).
INDICATORS_DB ?= .indicators-demo.sqlite3
INDICATORS_SIM ?= --days 60 --seed 1 --rubber-stamper dave --from-day 50 --drift model-b:+30%p95 --from-day 52
run-indicators: export DEBUG ?= 1
run-indicators: export DATABASE_URL = sqlite:///$(abspath $(INDICATORS_DB))
run-indicators: deps
	rm -f $(INDICATORS_DB) $(INDICATORS_DB)-journal $(INDICATORS_DB)-wal $(INDICATORS_DB)-shm
	$(PY) manage.py migrate --noinput
	@echo "Simulating 60 days of API tasks and committee votes (about a minute)..."
	EMAIL_BACKEND=django.core.mail.backends.dummy.EmailBackend $(PY) manage.py simulate_oversight $(INDICATORS_SIM)
	$(PY) manage.py seed_indicator_logins
	@echo "Serving FSAR at http://$(HOST):$(PORT)/indicators/ (Ctrl-C stops it)"
	$(PY) manage.py runserver $(HOST):$(PORT)

test: dev-deps browser
	$(PY) -m pytest $(PYTEST_ARGS)

lint: dev-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy --strict clients/python/src/fsar_client

# docs/screenshots/*.png: a seeded demo database, served on a free port, photographed by Chromium.
screenshots: dev-deps browser
	$(PY) scripts/screenshots.py $(SCREENSHOTS_ARGS)

bench: export DEBUG ?= 1
bench: dev-deps
	$(PY) -m bench $(BENCH_ARGS)

# Hand-written mutants of the gate, the policy rules, the tally and the audit chain, each
# run against the tests that must catch it (scripts/mutate.py; not in CI, see docs/testing.md).
mutate: dev-deps
	$(PY) scripts/mutate.py $(MUTATE_ARGS)

clean:
	rm -rf $(VENV) db.sqlite3 .test-db.sqlite3 .indicators-demo.sqlite3 staticfiles
