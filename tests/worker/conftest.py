"""A real Celery worker process for the worker tests (DESIGN.md, "Deferred syncs (Celery)").

`celery_worker_process` starts `celery -A scimsync worker --pool solo` as a
subprocess that uses the test process's database (the test database, read
from `django.db.connection.settings_dict` after pytest-django created it) and
the same broker (Redis when REDIS_URL/CELERY_BROKER_URL is set, otherwise the
kombu filesystem broker under SCIMSYNC_VAR_DIR/broker).

Isolation: each worker consumes only a queue of its own (`-Q
scimsync-test-<random>`, and SCIMSYNC_CELERY_QUEUE so that the tasks it sends
itself, like the sweep's re-dispatch, go there too), and the test process is
pointed at that queue by overriding `task_default_queue` on the Celery app for
the duration of the test. A developer's `make run` worker or a
parallel test run on the same Redis (which consume the default `celery` queue,
or their own random queue) can then neither steal these tasks nor hand theirs
to this worker. The name has no dot: kombu's filesystem transport reads the
queue name from the message file name after the first dot.

`celery_workers` starts, kills and restarts several workers on that queue;
`private_redis` (requested before it) gives the test and its workers a
redis-server of their own that the test stops, freezes and restarts.

When CI=true the broker must be Redis: REDIS_URL must be set and answer PING,
or the test fails (it is not skipped).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
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


def _wait_ready(worker: WorkerProcess) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while " ready." not in worker.log():
        if worker.process.poll() is not None:
            pytest.fail(f"the Celery worker exited ({worker.process.returncode}) before it was ready")
        if time.monotonic() > deadline:
            pytest.fail(f"the Celery worker was not ready after {READY_TIMEOUT} s")
        time.sleep(0.2)


class WorkerPool:
    """Starts real `celery worker` processes on one private queue; stops them all at the end.

    `start(**env)` overrides environment variables of that worker only (e.g.
    SCIMSYNC_SYNC_BATCH_SIZE); `kill(worker)` is a SIGKILL of its whole process
    group, as an OOM killer or a lost host would do.
    """

    def __init__(self, tmp_path: Path, workdir: Path, env: dict, queue: str):
        self.tmp_path, self.workdir, self.env, self.queue = tmp_path, workdir, env, queue
        self.workers: list[WorkerProcess] = []

    def start(self, **env_overrides: str) -> WorkerProcess:
        number = len(self.workers) + 1
        node = f"{self.queue}-{number}@%h"
        log_path = self.tmp_path / f"celery-worker-{number}.log"
        env = {**self.env, **env_overrides}
        command = celery_command() + [
            "-A", "scimsync", "worker", "-l", "info", "--concurrency", "1", "--pool", "solo",
            "-Q", self.queue, "-n", node, "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]
        with open(log_path, "wb") as log_file:
            process = subprocess.Popen(
                command, cwd=self.workdir, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        worker = WorkerProcess(process=process, queue=self.queue, node=node, log_path=log_path, env=env)
        self.workers.append(worker)
        _wait_ready(worker)
        return worker

    @staticmethod
    def kill(worker: WorkerProcess) -> None:
        try:
            os.killpg(worker.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        worker.process.wait(10)

    def logs(self) -> str:
        return "\n".join(f"--- {w.node} ---\n{w.log()}" for w in self.workers)

    def stop_all(self) -> None:
        for worker in self.workers:
            stop(worker.process)


@pytest.fixture
def celery_workers(request, transactional_db, tmp_path, monkeypatch):
    """Real `celery worker` processes on a private queue, using this test's database and broker."""
    from django.db import connection as db_connection

    from scimsync.celery import app

    require_redis_in_ci()
    if app.conf.task_routes:
        # A route would win over task_default_queue and send the runs past this worker.
        pytest.fail("CELERY_TASK_ROUTES is set: route execute_sync_run to the worker's queue too")
    default_queue = app.conf.task_default_queue
    queue = f"scimsync-test-{uuid.uuid4().hex[:12]}"
    env = worker_environment(db_connection.settings_dict)
    # The tasks a worker sends itself (the sweep's re-dispatch) go to this queue too.
    env["SCIMSYNC_CELERY_QUEUE"] = queue
    broker = getattr(request.node, "_private_broker", None)
    if broker is not None:  # the private_redis fixture: this test's own redis-server
        env["CELERY_BROKER_URL"] = broker
    # kombu's filesystem transport writes its exchange tables to ./control, relative
    # to the working directory when no control_folder is set. The workers, and with
    # that broker this test process too, work in a temporary directory, so they
    # share those tables and leave no control/ folder in the checkout.
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    filesystem = broker is None and str(settings.CELERY_BROKER_URL).startswith("filesystem")
    if filesystem and Path(settings.VAR_DIR).is_absolute():
        monkeypatch.chdir(workdir)
    pool = WorkerPool(tmp_path, workdir, env, queue)
    request.node._celery_workers = pool
    # Tasks this test queues go to the workers' private queue (the router reads
    # task_default_queue at each send). (Not monkeypatch: its undo deletes the
    # attribute, which celery's Settings does not allow.)
    app.conf.task_default_queue = queue
    try:
        yield pool
    finally:
        app.conf.task_default_queue = default_queue
        pool.stop_all()
        drop_queue(queue)


@pytest.fixture
def celery_worker_process(celery_workers):
    """One real `celery worker` on a private queue, using this test's database and broker."""
    return celery_workers.start()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateRedis:
    """A redis-server of this test only, that the test stops, freezes and restarts on one port.

    No persistence (`--save ''`, no AOF): a restart comes back empty, as a
    replaced broker host would, so messages sent before an outage are gone too.
    """

    def __init__(self, binary: str, workdir: Path):
        self.binary, self.workdir, self.port = binary, workdir, _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        import redis

        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=self.workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            try:
                if redis.Redis.from_url(self.url, socket_connect_timeout=1).ping():
                    return
            except redis.ConnectionError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"redis-server on port {self.port} did not start")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a frozen server cannot handle SIGTERM
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def freeze(self) -> None:
        """The server stops answering but keeps its connections open (a frozen host)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


@pytest.fixture
def private_redis(request, tmp_path):
    """A private redis-server as the broker of this test process and of its workers.

    Request it before celery_workers. Skipped when redis-server is not installed,
    except in CI, where it fails.
    """
    from scimsync.celery import app

    binary = shutil.which("redis-server")
    if binary is None:
        message = "redis-server is not installed: the broker-outage tests stop and restart a real Redis"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    workdir = tmp_path / "redis"
    workdir.mkdir()
    server = PrivateRedis(binary, workdir)
    server.start()
    request.node._private_broker = server.url
    saved = (app.conf.broker_url, app.conf.broker_transport_options)
    # The options settings.py gives a Redis broker (the filesystem ones make no sense here).
    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS if str(settings.CELERY_BROKER_URL).startswith("redis") \
        else {"socket_connect_timeout": 2, "socket_timeout": 5}
    app.conf.broker_url, app.conf.broker_transport_options = server.url, options
    _drop_broker_connections(app)
    try:
        yield server
    finally:
        app.conf.broker_url, app.conf.broker_transport_options = saved
        _drop_broker_connections(app)
        server.stop()


def _drop_broker_connections(app) -> None:
    """Forget pooled connections, so the next publish connects to app.conf.broker_url.

    (app.close() is not enough: the producer pool stays cached on app.amqp.) Both
    pools live in kombu's process-wide registries, keyed by broker URL: closing one
    without clearing the registry leaves a closed pool there, and the next test on
    that URL fails with "Acquire on closed pool". kombu.pools.reset() closes and forgets them all.
    """
    from kombu import pools

    pools.reset()
    app._pool = None
    app.amqp._producer_pool = None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Show the worker's log (its stdout and stderr) under a failed test."""
    report = yield
    pool = getattr(item, "_celery_workers", None)
    if pool is not None and report.failed:
        report.sections.append((f"Celery worker logs ({report.when})", pool.logs()))
    return report
