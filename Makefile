# Two commands on a fresh machine with only Python 3.11: `make run` and `make test`.
# Everything else here is what those two need, plus a few conveniences for developers.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
PORT   ?= 8000
export DJANGO_SETTINGS_MODULE ?= config.settings.local

.DEFAULT_GOAL := help
.PHONY: help run test setup setup-dev migrate lint format check clean bench bench-data bench-read

help:
	@echo "make run    set up and run Handover on http://127.0.0.1:$(PORT) (SQLite, no server needed)"
	@echo "make test   set up and run the test suite (DATABASE_URL / REDIS_URL select PostgreSQL / Redis)"
	@echo "make lint   ruff, mypy, Django's checks, the migrations check and the import contracts"

$(PY):
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 is needed, found {sys.version.split()[0]}"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Reinstall only when the dependency list changes; constraints.txt pins what the tests were run with.
$(VENV)/.installed: pyproject.toml constraints.txt | $(PY)
	$(PY) -m pip install --quiet -c constraints.txt -e .
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $@

setup: $(VENV)/.installed
setup-dev: $(VENV)/.installed-dev

migrate: setup
	@mkdir -p var/celery/queue var/celery/processed var/celery/control
	$(PY) manage.py migrate --noinput
	$(PY) manage.py load_templates
	$(PY) manage.py seed_demo
	$(PY) manage.py detect_stalls
	$(PY) manage.py collectstatic --noinput --verbosity 0

# Web (gunicorn), Celery worker and Celery beat, side by side (Procfile). honcho sets PORT for each process
# itself, so the web port travels as HANDOVER_PORT. The worker uses a thread pool: its tasks wait on the network
# and the database, and a prefork pool whose children receive honcho's SIGTERM with it hangs on shutdown.
# The demo is served as a product, not a debugger: DEBUG off (the product's own error pages, never Django's URL
# list), static files from collectstatic through WhiteNoise. `make run DEBUG=true` for development.
DEBUG ?= false
run: migrate
	@echo "Handover on http://127.0.0.1:$(PORT)/  (admin: http://127.0.0.1:$(PORT)/admin/, health: /healthz)"
	HANDOVER_PORT=$(PORT) DEBUG=$(DEBUG) $(VENV)/bin/honcho start --procfile Procfile

# Four processes (pytest-xdist; on two cores too: much of a test's time is spent waiting on the database), each with
# its own test database. Tests that share a browser or a Celery worker run in one of them (tests/conftest.py).
# `make test PYTEST_XDIST=` runs the suite in one process; PYTEST_ARGS adds options (CI: --durations=25).
PYTEST_XDIST ?= -n 4 --dist loadgroup
test: setup-dev
	$(VENV)/bin/pytest $(PYTEST_XDIST) $(PYTEST_ARGS)

lint: setup-dev
	@mkdir -p var
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy config projects operations handover benchmarks
	$(PY) manage.py check
	$(PY) manage.py makemigrations --check --dry-run
	$(VENV)/bin/lint-imports

format: setup-dev
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) var/static .pytest_cache .ruff_cache

# Heavy runs, kept out of `make test`: results go in docs/benchmarks.md.
BENCH_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/handover_bench
bench: setup-dev
	DATABASE_URL=$(BENCH_DATABASE_URL) $(PY) -m benchmarks.stall_detection
# The read-side benchmark's databases: `make bench-data HANDOVERS=100000` (re)creates handover_bench100k and fills it.
HANDOVERS ?= 10000
BENCH_DATA_DB = handover_bench$(shell expr $(HANDOVERS) / 1000)k
bench-data: setup-dev
	dropdb -h 127.0.0.1 -U postgres --if-exists $(BENCH_DATA_DB) && createdb -h 127.0.0.1 -U postgres $(BENCH_DATA_DB)
	DATABASE_URL=postgres://postgres@127.0.0.1:5432/$(BENCH_DATA_DB) $(PY) manage.py migrate --noinput -v0
	DATABASE_URL=postgres://postgres@127.0.0.1:5432/$(BENCH_DATA_DB) $(PY) -m benchmarks.dataset --handovers $(HANDOVERS)
bench-read: setup-dev
	$(PY) -m benchmarks.read_side
