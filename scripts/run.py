#!/usr/bin/env python3
"""The `make run` launcher: a development scimsync on one machine.

Migrates the database, prints the SCIM base URL, a fresh demo token and the
admin login, then runs the web server and a Celery worker side by side, each in
its own process group. Ctrl-C or SIGTERM stops both; if either dies, the other
is stopped and the launcher exits non-zero.

Environment: HOST (default 127.0.0.1), PORT (default 8000); SECRET_KEY is
generated once into var/secret_key when unset; DEBUG defaults to true here only.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STOP_TIMEOUT = 20.0  # seconds a child gets to exit after SIGTERM before SIGKILL


def log(message: str) -> None:
    print(f"[run] {message}", file=sys.stderr, flush=True)


def read_or_create_secret(path: Path, make) -> str:
    """The content of `path`, written once with mode 0600 when missing."""
    if path.exists():
        value = path.read_text().strip()
        if value:
            return value
    value = make()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value


def addrport(host: str, port: str) -> str:
    if ":" in host and not host.startswith("["):  # a bare IPv6 address
        host = f"[{host}]"
    return f"{host}:{port}"


def celery_command() -> list[str]:
    celery = Path(sys.executable).parent / "celery"
    base = [str(celery)] if celery.exists() else [sys.executable, "-m", "celery"]
    # -B embeds the beat scheduler (per-connection schedules, the stale-run sweep);
    # production runs `celery -A scimsync beat` as its own process instead.
    return base + ["-A", "scimsync", "worker", "-B", "-l", "info", "--concurrency", "1"]


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the launcher itself is killed (Linux only)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort, not available everywhere
        pass


def start(name: str, argv: list[str]) -> subprocess.Popen:
    log(f"starting {name}: {' '.join(argv)}")
    return subprocess.Popen(
        argv, cwd=ROOT, start_new_session=True,
        preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
    )


def stop(children: dict[str, subprocess.Popen]) -> None:
    """SIGTERM each live child, wait, then SIGKILL what remains of its process group.

    Only the group leader gets SIGTERM: the Celery worker then shuts its own pool
    down (a warm shutdown) instead of seeing its pool process killed under it.
    """
    for name, proc in children.items():
        if proc.poll() is None:
            log(f"stopping {name} (pid {proc.pid})")
            try:
                proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + STOP_TIMEOUT
    for name, proc in children.items():
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log(f"{name} did not stop in {STOP_TIMEOUT:.0f}s; killing it")
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
    # Worker pool processes share the worker's group; make sure none is left.
    for proc in children.values():
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


_stop_signal: int | None = None


def _wait_listening(host: str, port: int, server: subprocess.Popen, timeout: float = 30.0) -> bool:
    """True once the web server accepts connections, so "running" is printed when it is."""
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.poll() is None and _stop_signal is None:
        try:
            with socket.create_connection((host.strip("[]"), port), timeout=1):
                return True
        except OSError:
            time.sleep(0.2)
    return False


def _on_signal(signum, _frame):
    global _stop_signal
    _stop_signal = signum


def main() -> int:
    os.chdir(ROOT)
    var_dir = Path(os.environ.get("SCIMSYNC_VAR_DIR") or ROOT / "var")
    var_dir.mkdir(parents=True, exist_ok=True)

    if not os.environ.get("SECRET_KEY"):
        os.environ["SECRET_KEY"] = read_or_create_secret(
            var_dir / "secret_key", lambda: secrets.token_urlsafe(50)
        )
    os.environ.setdefault("DEBUG", "true")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scimsync.settings")
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    # runserver answers each request on a thread of its own, and a persistent database
    # connection outlives its thread: with PostgreSQL, a burst of requests used up the
    # server's connections (found by a break-it helper). Django's docs say as much.
    os.environ.setdefault("SCIMSYNC_DB_CONN_MAX_AGE", "0")
    if not (os.environ.get("CELERY_BROKER_URL") or os.environ.get("REDIS_URL")):
        # kombu's filesystem transport (the no-Redis default) needs its folders to exist.
        for sub in ("queue", "processed"):
            (var_dir / "broker" / sub).mkdir(parents=True, exist_ok=True)
    host = os.environ.get("HOST") or "127.0.0.1"
    port = os.environ.get("PORT") or "8000"

    manage = [sys.executable, str(ROOT / "manage.py")]
    for step in (["migrate", "--noinput"], ["setup_demo", "--host", host, "--port", port]):
        result = subprocess.run(manage + step, cwd=ROOT)
        if result.returncode != 0:
            log(f"manage.py {step[0]} failed (exit {result.returncode})")
            return result.returncode or 1

    children: dict[str, subprocess.Popen] = {}
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    children["web server"] = start(
        "web server", manage + ["runserver", addrport(host, port), "--noreload"]
    )
    children["celery worker"] = start("celery worker", celery_command())
    if _wait_listening(host, int(port), children["web server"]):
        log(f"running at http://{addrport(host, port)}/ ; press Ctrl-C to stop")
    else:
        log(f"the web server is not answering on {addrport(host, port)} yet; see its output above")
    while _stop_signal is None:
        for name, proc in children.items():
            code = proc.poll()
            if code is not None:
                log(f"{name} exited with status {code}; stopping the rest")
                stop(children)
                return code if code > 0 else 1
        time.sleep(0.5)
    log(f"got {signal.Signals(_stop_signal).name}; stopping")
    stop(children)
    log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
