"""The production server, gunicorn with the repository's gunicorn.conf.py, answers what an IdP
sends: the lookup by userName of the longest userName the server stores (RFC 7644 §3.4.2,
sent before every write) must reach scimsync, not end in gunicorn's HTML 414. A filter's
value is a JSON string (RFC 7644 §3.4.2.2), so a client may send it \\u-escaped: 16 bytes per
character once URL-encoded, past gunicorn's default limit of 4,094 for the request line."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from django.db import connection as db

from tests.conftest import USER_SCHEMA, ScimClient
from tests.worker.conftest import stop, worker_environment

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db(transaction=True)  # gunicorn reads what the test committed


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def gunicorn_url(tmp_path):
    port = _free_port()
    log = (tmp_path / "gunicorn.log").open("w")
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "scimsync.wsgi", "-w", "1", "-b", f"127.0.0.1:{port}"],
        cwd=ROOT, env=worker_environment(db.settings_dict), stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(url + "/scim/v2/ServiceProviderConfig", timeout=2)
            break
        except requests.ConnectionError:
            if process.poll() is not None or time.monotonic() > deadline:
                stop(process)
                pytest.fail("gunicorn did not start:\n" + (tmp_path / "gunicorn.log").read_text())
            time.sleep(0.2)
    yield url
    stop(process)
    log.close()


def test_a_lookup_of_the_longest_user_name_reaches_the_server(gunicorn_url, token):
    scim = ScimClient(gunicorn_url + "/scim/v2", token)
    name = "😀" * 255  # the most a userName holds; 12 bytes each once URL-encoded
    created = scim.post("/Users", {"schemas": [USER_SCHEMA], "userName": name})
    assert created.status_code == 201, created.text
    for literal in (json.dumps(name, ensure_ascii=False), json.dumps(name)):  # as is, and \\u-escaped
        found = scim.get("/Users", params={"filter": f"userName eq {literal}"})
        assert found.status_code == 200, found.text[:300]
        assert found.headers["Content-Type"].startswith("application/scim+json")
        assert [u["id"] for u in found.json()["Resources"]] == [created.json()["id"]]
