"""`python -m benchmarks.inprocess`: what one request of each scenario costs, in one process.

`make bench` gives the verdicts, over HTTP; on a shared virtual machine its numbers
move by a quarter from run to run, too much to tell whether a change to the code
made a request 3 % cheaper. This calls Django's WSGI handler directly (no gunicorn,
no sockets) with the requests of benchmarks.scenarios, against a clone of the seeded
template `make bench` keeps (built first if missing), and reports per request:

- the Python process's CPU and the PostgreSQL backend's CPU (milliseconds, over
  --requests requests after a warm-up);
- with --instructions, the Python process's instructions, counted by valgrind's
  callgrind: the same for the same code and data whatever else the machine does.
  Slow (each scenario runs twice under valgrind, about a minute each).

    .venv/bin/python -m benchmarks.inprocess                      # every scenario, 1k users
    .venv/bin/python -m benchmarks.inprocess --instructions filter_username patch_department

DATABASE_URL names the PostgreSQL server, as for `make bench`; do not run both at once
(they measure on the same clone's name). Compare runs of two
commits with each other, never with `make bench`'s figures: gunicorn's HTTP handling
(about 0.3 ms a request here) is not in these.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time

from benchmarks import procstat, scenarios

WARMUP = 200


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.inprocess", description=__doc__.split("\n\n")[0])
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO",
                        help=f"any of {', '.join(scenarios.ORDER)} (default: all)")
    parser.add_argument("--requests", type=int, default=2000, help="measured requests per scenario (default 2000)")
    parser.add_argument("--users", type=int, default=1000, help="size of the seeded database (default 1000)")
    parser.add_argument("--instructions", action="store_true", help="also count instructions with valgrind")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)  # scenario, requests, users, token
    args = parser.parse_args()
    if args.child:
        return _child(*args.child)
    unknown = sorted(set(args.scenarios) - set(scenarios.ORDER))
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(scenarios.ORDER)}")
    if args.instructions and shutil.which("valgrind") is None:
        parser.error("--instructions needs valgrind (apt-get install valgrind)")
    return _parent(args.scenarios or list(scenarios.ORDER), args.requests, args.users, args.instructions)


def _parent(keys: list[str], requests: int, users: int, instructions: bool) -> int:
    from benchmarks.__main__ import Config, Databases, _django_env

    os.environ["BENCH_USERS"] = str(users)
    config = Config.from_env()
    databases = Databases(config)
    with tempfile.TemporaryDirectory(prefix="scimsync-inprocess-") as tmp:
        env = _django_env(config, "", tmp)
        info = databases.seeded_template(users, env, tmp)
        env["DATABASE_URL"] = databases.url(databases.clone(users))
        try:
            print(f"{users} users, {requests} requests per scenario after {WARMUP} warm-up; ms per request")
            for key in keys:
                line = f"{key:20s}" + _run(env, key, requests, users, info["token"])
                if instructions:
                    line += f"  {_instructions(env, key, users, info['token']):,} instructions"
                print(line, flush=True)
        finally:
            databases.drop_clones()
    return 0


def _child_command(key: str, requests: int, users: int, token: str) -> list[str]:
    return [sys.executable, "-m", "benchmarks.inprocess", "--child", key, str(requests), str(users), token]


def _checked(command: list[str], env: dict) -> subprocess.CompletedProcess:
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(command[:6])} ... failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return done


def _run(env: dict, key: str, requests: int, users: int, token: str) -> str:
    out = _checked(_child_command(key, requests, users, token), env).stdout
    found = json.loads(out.strip().splitlines()[-1])
    return f"  python {found['python_ms']:.3f}  postgresql {found['postgres_ms']:.3f}"


def _instructions(env: dict, key: str, users: int, token: str) -> int:
    """Instructions of one request: two runs that differ only in their number of requests, subtracted,
    so that Python's start, Django's setup and the warm-up cancel out."""
    counts = []
    for requests in (50, 250):
        done = _checked(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                         *_child_command(key, requests, users, token)], {**env, "PYTHONMALLOC": "malloc"})
        counts.append(int(re.search(r"Collected : (\d+)", done.stderr).group(1)))
    return round((counts[1] - counts[0]) / 200)


def _child(key: str, requests: str, users: str, token: str) -> int:
    import django

    django.setup()
    from django.core.handlers.wsgi import WSGIHandler
    from django.db import connection

    scenario = next(s for s in scenarios.build(int(users)) if s.key == key)
    handler = WSGIHandler()
    rng = random.Random(1)

    def call(k: int) -> None:
        method, path, body = scenario.make(rng, k)
        path, _, query = path.partition("?")
        body = body or b""
        environ = {
            "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query, "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000", "HTTP_HOST": "127.0.0.1", "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr, "CONTENT_LENGTH": str(len(body)),
            "CONTENT_TYPE": "application/scim+json", "HTTP_AUTHORIZATION": f"Bearer {token}",
        }
        status: list[str] = []
        content = b"".join(handler(environ, lambda s, headers: status.append(s)))
        if int(status[0][:3]) != scenario.expect or (scenario.check and not scenario.check(content)):
            raise SystemExit(f"{key}: {method} {path} answered {status[0]}: {content[:300]!r}")

    for k in range(WARMUP):
        call(k)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    python0, postgres0 = time.process_time(), procstat.cpu_seconds(backend)
    for k in range(WARMUP, WARMUP + int(requests)):
        call(k)
    n = int(requests)
    print(json.dumps({"python_ms": (time.process_time() - python0) / n * 1000,
                      "postgres_ms": (procstat.cpu_seconds(backend) - postgres0) / n * 1000}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
