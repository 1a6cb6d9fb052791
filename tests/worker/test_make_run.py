"""`make run` as a newcomer uses it (issue 2, "Two commands"): the launcher sets up a fresh
SQLite database, prints the SCIM URL, a token and the admin login, serves the web app with
a Celery worker on the embedded broker, and Ctrl-C stops both.

Runs scripts/run.py (what `make run` runs after installing) in a clean environment: no
DATABASE_URL, no REDIS_URL, its own var directory and port.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.worker


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Output:
    """The launcher's merged stdout and stderr, read by a thread into a list of lines.

    (select() on the pipe would miss lines already in the reader's buffer.)
    """

    def __init__(self, proc: subprocess.Popen):
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc) -> None:
        for line in proc.stdout:
            self.lines.append(line.rstrip())

    def wait_for(self, pattern: str, timeout: float) -> re.Match:
        """The first line matching `pattern`, waiting for it up to `timeout` seconds."""
        deadline, checked = time.monotonic() + timeout, 0
        while True:
            for line in self.lines[checked:]:
                if match := re.search(pattern, line):
                    return match
                checked += 1
            if time.monotonic() > deadline or not self._thread.is_alive() and checked == len(self.lines):
                pytest.fail(f"no line matching {pattern!r} within {timeout} s; output:\n" + self.text())
            time.sleep(0.1)

    def text(self) -> str:
        self._thread.join(timeout=0 if self._thread.is_alive() else None)
        return "\n".join(self.lines[-80:])


def test_make_run_prints_what_it_serves_then_stops_on_ctrl_c(tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "SECRET_KEY", "DEBUG")}
    env.update(SCIMSYNC_VAR_DIR=str(tmp_path / "var"), PORT=str(port), HOST="127.0.0.1", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "run.py")], cwd=ROOT, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    output = _Output(proc)
    try:
        # Each on its own line, for scripts that read them (issue 2).
        url = output.wait_for(r"^SCIM base URL: (\S+)$", 120).group(1)
        token = output.wait_for(r"^SCIM token: (scim_\S+)$", 30).group(1)
        user, password = output.wait_for(r"^Admin login: (\S+) / (\S+)$", 30).groups()
        assert url == f"http://127.0.0.1:{port}/scim/v2"
        output.wait_for(r"running at http://127\.0\.0\.1:\d+/", 60)  # printed once it listens

        created = requests.post(f"{url}/Users", json={
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "newcomer@example.com",
            "title": "Analyst"}, headers={"Authorization": f"Bearer {token}",
                                          "Content-Type": "application/scim+json"}, timeout=30)
        assert created.status_code == 201, created.text
        session = requests.Session()
        login_page = session.get(f"http://127.0.0.1:{port}/admin/login/", timeout=30)
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page.text).group(1)
        signed_in = session.post(f"http://127.0.0.1:{port}/admin/login/?next=/admin/", data={
            "csrfmiddlewaretoken": csrf, "username": user, "password": password}, timeout=30)
        assert signed_in.url.endswith("/admin/") and "Log out" in signed_in.text
        output.wait_for(r"celery@\S+ ready", 60)  # the worker came up too
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail("make run did not stop within 40 s of Ctrl-C")
    output.wait_for(r"\[run\] stopped", 10)
    assert proc.returncode == 0, output.text()
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=2)
