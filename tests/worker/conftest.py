"""A real Celery worker process for the worker tests (DESIGN.md, "Deferred syncs (Celery)").

`celery_worker_process` starts `celery -A scimsync worker --pool solo` as a
subprocess that uses the test process's database (the test database, read
from `django.db.connection.settings_dict` after pytest-django created it) and
the same broker (Redis when REDIS_URL/CELERY_BROKER_URL is set, otherwise the
kombu filesystem broker under SCIMSYNC_VAR_DIR/broker).

Isolation: settings.py has no environment knob for the default queue, so each
worker consumes only a queue of its own (`-Q scimsync-test-<random>`) and the
test process is pointed at that queue by overriding `task_default_queue` on the
Celery app for the duration of the test. A developer's `make run` worker or a
parallel test run on the same Redis (which consume the default `celery` queue,
or their own random queue) can then neither steal these tasks nor hand theirs
to this worker. The name has no dot: kombu's filesystem transport reads the
queue name from the message file name after the first dot.

When CI=true the broker must be Redis: REDIS_URL must be set and answer PING,
or the test fails (it is not skipped).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
from django.conf import settings

READY_TIMEOUT = 60  # seconds for Django + Celery to start
STOP_TIMEOUT = 15  # seconds between SIGTERM and SIGKILL

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class WorkerProcess:
    process: subprocess.Popen
    queue: str
    node: str
    log_path: Path
    env: dict

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no worker log)"


def database_url(settings_dict: dict) -> str:
    """A DATABASE_URL that settings.py parses back into the same database."""
    engine = settings_dict["ENGINE"]
    name = str(settings_dict["NAME"])
    options = settings_dict.get("OPTIONS") or {}
    if engine == "django.db.backends.sqlite3":
        if name == ":memory:" or name.startswith("file:") or "mode=memory" in name:
            pytest.fail(f"the worker tests need a file SQLite test database, not {name!r}")
        path = Path(name).resolve()
        query = {"timeout": options["timeout"]} if "timeout" in options else {}
        return f"sqlite:///{path}" + (f"?{urlencode(query)}" if query else "")
    if engine in ("django.db.backends.postgresql", "django.db.backends.postgresql_psycopg2"):
        credentials = quote(settings_dict.get("USER") or "", safe="")
        if settings_dict.get("PASSWORD"):
            credentials += ":" + quote(settings_dict["PASSWORD"], safe="")
        host = settings_dict.get("HOST") or ""
        port = settings_dict.get("PORT")
        netloc = (f"{credentials}@" if credentials else "") + host + (f":{port}" if port else "")
        query = {k: v for k, v in options.items() if isinstance(v, (str, int))}
        url = f"postgres://{netloc}/{quote(name, safe='')}"
        return url + (f"?{urlencode(query)}" if query else "")
    pytest.fail(f"the worker tests do not know how to hand database engine {engine!r} to a worker")


def require_redis_in_ci() -> None:
    """In CI the worker tests run against Redis, never the filesystem fallback."""
    if os.environ.get("CI") != "true":
        return
    redis_url = os.environ.get("REDIS_URL", "").strip()
    if not redis_url:
        pytest.fail("CI=true but REDIS_URL is not set: in CI the worker tests run against Redis")
    broker = str(settings.CELERY_BROKER_URL)
    if not broker.startswith(("redis://", "rediss://")):
        pytest.fail(f"CI=true but the Celery broker is {broker!r}, not Redis")
    import redis

    problem = None
    try:
        if not redis.Redis.from_url(redis_url, socket_connect_timeout=3, socket_timeout=3).ping():
            problem = "no PONG"
    except Exception as error:  # connection refused, DNS, auth...
        problem = f"{type(error).__name__}: {error}"
    if problem:
        pytest.fail(f"CI=true but Redis at REDIS_URL does not answer PING ({problem})")


def worker_environment(settings_dict: dict) -> dict:
    env = dict(os.environ)
    env["DATABASE_URL"] = database_url(settings_dict)
    env["SECRET_KEY"] = settings.SECRET_KEY
    env["SCIMSYNC_VAR_DIR"] = str(Path(settings.VAR_DIR).resolve())
    env["DJANGO_SETTINGS_MODULE"] = os.environ.get("DJANGO_SETTINGS_MODULE") or "scimsync.settings"
    env["PYTHONUNBUFFERED"] = "1"
    # The worker runs outside the checkout (see below), so the project goes on the path.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH")) if p)
    broker = str(settings.CELERY_BROKER_URL)
    if broker.startswith("filesystem"):
        # The default broker: settings derive its folders from SCIMSYNC_VAR_DIR, set above.
        env.pop("CELERY_BROKER_URL", None)
        env.pop("REDIS_URL", None)
    else:
        env["CELERY_BROKER_URL"] = broker
    return env


def celery_command() -> list[str]:
    celery = Path(sys.executable).parent / "celery"
    return [str(celery)] if celery.exists() else [sys.executable, "-m", "celery"]


def stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)  # warm shutdown
    try:
        process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def drop_queue(queue: str) -> None:
    """Best effort: leave no messages, and on Redis no bindings, of the private queue behind."""
    from scimsync.celery import app

    try:
        with app.connection_for_write() as conn:
            if str(settings.CELERY_BROKER_URL).startswith("filesystem"):
                # Its exchange table is in the temporary working directory.
                conn.default_channel.queue_purge(queue)
                return
            # Declared on this channel first, so the channel knows the bindings it deletes.
            bound = app.amqp.queues[queue].bind(conn.default_channel)
            bound.declare()
            bound.delete()
    except Exception:  # cleanup must not hide the test's outcome
        pass


@pytest.fixture
def celery_worker_process(request, transactional_db, tmp_path, monkeypatch):
    """A real `celery worker` on a private queue, using this test's database and broker."""
    from django.db import connection as db_connection

    from scimsync.celery import app

    require_redis_in_ci()
    if app.conf.task_routes:
        # A route would win over task_default_queue and send the runs past this worker.
        pytest.fail("CELERY_TASK_ROUTES is set: route execute_sync_run to the worker's queue too")
    default_queue = app.conf.task_default_queue
    tag = uuid.uuid4().hex[:12]
    queue = f"scimsync-test-{tag}"
    node = f"scimsync-test-{tag}@%h"
    env = worker_environment(db_connection.settings_dict)
    log_path = tmp_path / "celery-worker.log"
    # kombu's filesystem transport writes its exchange tables to ./control, relative
    # to the working directory (settings.py sets no control_folder). The worker, and
    # with that broker this test process too, work in a temporary directory, so
    # they share those tables and leave no control/ folder in the checkout.
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    filesystem = str(settings.CELERY_BROKER_URL).startswith("filesystem")
    if filesystem and Path(settings.VAR_DIR).is_absolute():
        monkeypatch.chdir(workdir)
    command = celery_command() + [
        "-A", "scimsync", "worker", "-l", "info", "--concurrency", "1", "--pool", "solo",
        "-Q", queue, "-n", node, "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            command, cwd=workdir, env=env, stdout=log_file, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
    worker = WorkerProcess(process=process, queue=queue, node=node, log_path=log_path, env=env)
    request.node._celery_worker = worker
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            text = worker.log()
            if " ready." in text:
                break
            if process.poll() is not None:
                pytest.fail(f"the Celery worker exited ({process.returncode}) before it was ready")
            if time.monotonic() > deadline:
                pytest.fail(f"the Celery worker was not ready after {READY_TIMEOUT} s")
            time.sleep(0.2)
        # Tasks this test queues go to the worker's private queue (the router reads
        # task_default_queue at each send). (Not monkeypatch:
        # its undo deletes the attribute, which celery's Settings does not allow.)
        app.conf.task_default_queue = queue
        yield worker
    finally:
        app.conf.task_default_queue = default_queue
        stop(process)
        drop_queue(queue)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Show the worker's log (its stdout and stderr) under a failed test."""
    report = yield
    worker = getattr(item, "_celery_worker", None)
    if worker is not None and report.failed:
        report.sections.append((f"Celery worker log ({report.when})", worker.log()))
    return report
