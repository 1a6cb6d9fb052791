# scimsync developer tasks. Needs only python3 and make on a fresh machine.
#
#   make venv    create .venv and install the pinned dependencies (requirements.lock)
#   make run     SQLite + web server + Celery worker; prints the SCIM URL, a token, the admin login
#   make test    pytest (PYTEST_ARGS="-k foo -x" to pass arguments)
#   make bench   SCIM over HTTP on gunicorn + PostgreSQL at 1k and 100k users (docs/benchmarks.md);
#                DATABASE_URL names the server, default postgres://postgres@127.0.0.1:5432/scimsync_bench
#   make lint    Django system checks, missing migrations, and ruff when installed
#
# HOST and PORT (default 127.0.0.1 and 8000) are passed to `make run` from the
# environment or the command line: `make run PORT=8001`.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

ifdef HOST
export HOST
endif
ifdef PORT
export PORT
endif

.PHONY: venv run test bench lint clean-venv

venv: $(STAMP)

# Re-installs only when the lock file or pyproject.toml is newer than the stamp.
$(STAMP): requirements.lock pyproject.toml
	@test -x $(PY) || { echo "==> creating $(VENV) with $(PYTHON) -m venv"; \
		$(PYTHON) -m venv $(VENV) || { echo "error: '$(PYTHON) -m venv' failed (on Debian/Ubuntu: apt-get install python3-venv)" >&2; exit 1; }; }
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	@rm -rf scimsync.egg-info  # build by-product; the install's metadata lives in $(VENV)
	@touch $(STAMP)
	@echo "==> $(VENV) is up to date"

run: venv
	$(PY) scripts/run.py

# The settings refuse to start without SECRET_KEY when DEBUG is off; tests get a
# throwaway key unless one is set (CI sets its own). Tests keep their SQLite files
# and embedded-broker messages in var/test, away from `make run`'s, and close
# database connections after each request so the test database can be dropped.
test: venv
	SECRET_KEY="$${SECRET_KEY:-test-only-insecure-key}" SCIMSYNC_VAR_DIR="$(CURDIR)/var/test" \
		SCIMSYNC_DB_CONN_MAX_AGE=0 $(PY) -m pytest $(PYTEST_ARGS)

bench: venv
	@if [ -f benchmarks/__main__.py ]; then \
		SECRET_KEY="$${SECRET_KEY:-bench-only-insecure-key}" $(PY) -m benchmarks; \
	else \
		echo "make bench: benchmarks/__main__.py does not exist yet; nothing to run" >&2; exit 1; \
	fi

lint: venv
	DEBUG="$${DEBUG:-true}" $(PY) manage.py check
	DEBUG="$${DEBUG:-true}" $(PY) manage.py makemigrations --check --dry-run
	@if $(PY) -m ruff --version >/dev/null 2>&1; then $(PY) -m ruff check .; \
	else echo "ruff is not installed in $(VENV); skipped (.venv/bin/pip install ruff)"; fi

clean-venv:
	rm -rf $(VENV)
