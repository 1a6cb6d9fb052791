"""Settings come from the environment; a bad value stops the process and names the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _start(env_changes: dict[str, str | None]) -> subprocess.CompletedProcess:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "scimsync.settings"}
    for key, value in env_changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); from django.conf import settings; "
         "print(settings.DATABASES['default']['ENGINE'], settings.CELERY_BROKER_URL)"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )


@pytest.mark.parametrize(
    "variable, value",
    [("DEBUG", "maybe"), ("DATABASE_URL", "mysql://x@y/z"), ("REDIS_URL", "http://redis:6379"),
     ("SCIMSYNC_MAX_PAGE_SIZE", "lots")],
)
def test_a_bad_value_fails_at_start_naming_the_variable(variable, value):
    result = _start({variable: value, "SECRET_KEY": "k"})
    assert result.returncode != 0
    assert variable in result.stderr


def test_production_default_refuses_to_start_without_secret_key(tmp_path):
    result = _start({"DEBUG": None, "SECRET_KEY": None, "SCIMSYNC_VAR_DIR": str(tmp_path)})
    assert result.returncode != 0 and "SECRET_KEY" in result.stderr


def test_manage_py_uses_the_key_make_run_generated_and_says_what_is_wrong_without_a_traceback(tmp_path):
    """A newcomer runs `manage.py create_api_key` after `make run`, with no SECRET_KEY set."""
    env = {**os.environ, "SCIMSYNC_VAR_DIR": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3"}
    env.pop("SECRET_KEY", None)
    env.pop("DEBUG", None)
    check = [sys.executable, "manage.py", "check"]
    refused = subprocess.run(check, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0
    assert "configuration error: SECRET_KEY is not set" in refused.stderr and "Traceback" not in refused.stderr
    (tmp_path / "secret_key").write_text("generated-by-make-run\n")
    started = subprocess.run(check, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert started.returncode == 0, started.stderr


def test_zero_setup_defaults_are_sqlite_and_the_embedded_broker(tmp_path):
    result = _start({"DATABASE_URL": None, "REDIS_URL": None, "CELERY_BROKER_URL": None,
                     "SECRET_KEY": "k", "SCIMSYNC_VAR_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["django.db.backends.sqlite3", "filesystem://"]


def test_database_url_and_redis_url_select_postgresql_and_redis():
    result = _start({"DATABASE_URL": "postgres://u@db:5432/scim", "REDIS_URL": "redis://r:6379/0", "SECRET_KEY": "k"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["django.db.backends.postgresql", "redis://r:6379/0"]
