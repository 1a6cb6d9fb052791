"""`make bench`: SCIM over HTTP, gunicorn on PostgreSQL, at 1k and 100k users, against a bare view.

For each user count: clone a database from a cached, seeded template (built
once per dataset version: migrate, then benchmarks.seed), and start a gunicorn
with the application's production settings plus a reference view
(benchmarks.bench_settings). Then measure each scenario of
benchmarks.scenarios with benchmarks.loadgen, the sizes back to back (see
run()). The table goes to stdout and to benchmarks/results/latest.md. gunicorn
is stopped and the clones dropped at the end, also on failure or Ctrl-C; the
templates stay for the next run. docs/benchmarks.md explains the numbers.

Environment (defaults in brackets):
  DATABASE_URL       server and database name prefix          [postgres://postgres@127.0.0.1:5432/scimsync_bench]
  BENCH_USERS        user counts, comma-separated            [1000,100000]
  BENCH_REQUESTS     most requests per scenario               [2000]
  BENCH_SECONDS      most seconds per scenario                [12]
  BENCH_CONCURRENCY  client processes sending at once         [4]
  BENCH_WARMUP       unmeasured requests before a scenario    [40]
  BENCH_WORKERS      gunicorn workers                         [2]
  BENCH_ROUNDS       rounds each scenario's budget is split in [2]
  BENCH_GUNICORN_ARGS  extra gunicorn arguments               []
  BENCH_SCENARIOS    subset to run, comma-separated           [all]
  BENCH_RESEED       1: rebuild the cached templates          [0]
  BENCH_RESULTS      report path                              [benchmarks/results/latest.md]
Exit status: 0 all targets met, 1 a target failed, 2 the run itself failed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import http.client
import json
import os
import platform
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from benchmarks import loadgen, procstat, report, scenarios

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/scimsync_bench"
# What the seeded data depends on: a change to any of these rebuilds the cached templates.
DATASET_SOURCES = (
    "benchmarks/seed.py", "benchmarks/dataset.py", "*/migrations/*.py", "mappings/catalogue.py",
    "mappings/presets.py", "scimsync/scim/documents.py", "scimsync/sync/ownership.py",
    "scimsync/sync/values.py", "scimsync/sync/services.py", "users/models.py", "users/page_index.py",
)


class ConfigError(Exception):
    pass


@dataclass
class Config:
    sizes: list[int]
    requests: int
    seconds: float
    concurrency: int
    warmup: int
    workers: int
    rounds: int
    gunicorn_args: list[str]
    scenarios: list[str]
    pg_url: str  # the server, without a database
    db: str  # database name prefix
    reseed: bool
    results: Path

    @classmethod
    def from_env(cls) -> Config:
        env = os.environ

        def integer(name: str, default: int, minimum: int = 1) -> int:
            raw = env.get(name, "").strip() or str(default)
            try:
                value = int(raw.replace("_", ""))
            except ValueError:
                raise ConfigError(f"{name}={raw!r} is not an integer") from None
            if value < minimum:
                raise ConfigError(f"{name}={value} must be at least {minimum}")
            return value

        raw_sizes = env.get("BENCH_USERS", "").strip() or "1000,100000"
        try:
            sizes = sorted({int(s.strip().replace("_", "")) for s in raw_sizes.split(",") if s.strip()})
        except ValueError:
            raise ConfigError(f"BENCH_USERS={raw_sizes!r}: give user counts like 1000,100000") from None
        if not sizes or sizes[0] < 1:
            raise ConfigError(f"BENCH_USERS={raw_sizes!r}: give user counts like 1000,100000")
        try:
            seconds = float(env.get("BENCH_SECONDS", "").strip() or 12)
        except ValueError:
            raise ConfigError(f"BENCH_SECONDS={env['BENCH_SECONDS']!r} is not a number") from None
        if seconds <= 0:
            raise ConfigError("BENCH_SECONDS must be positive")
        wanted = [s.strip() for s in env.get("BENCH_SCENARIOS", "").split(",") if s.strip()]
        unknown = sorted(set(wanted) - set(scenarios.ORDER))
        if unknown:
            raise ConfigError(f"BENCH_SCENARIOS: unknown {', '.join(unknown)}; choose from {', '.join(scenarios.ORDER)}")
        chosen = [s for s in scenarios.ORDER if not wanted or s in wanted]
        if any(scenarios.TARGETS[s].min_share_of_reference for s in chosen) and "reference" not in chosen:
            chosen.insert(0, "reference")  # the ratios need it
        url = env.get("DATABASE_URL", "").strip() or DEFAULT_DATABASE_URL
        pg_url, _, db = url.rstrip("/").rpartition("/")
        if not url.startswith(("postgres://", "postgresql://")) or not pg_url.count("/") >= 2 or not db:
            raise ConfigError(f"DATABASE_URL={url!r}: give postgres://USER@HOST:PORT/NAME")
        if not db.replace("_", "").isalnum():
            raise ConfigError(f"DATABASE_URL: database name {db!r} must be letters, digits and underscores")
        if "bench" not in db:  # the benchmark drops its databases: never one of the application's
            db += "_bench"
        return cls(
            sizes=sizes,
            requests=integer("BENCH_REQUESTS", 2000),
            seconds=seconds,
            concurrency=integer("BENCH_CONCURRENCY", 4),
            warmup=integer("BENCH_WARMUP", 40, minimum=0),
            workers=integer("BENCH_WORKERS", 2),
            rounds=integer("BENCH_ROUNDS", 2),
            gunicorn_args=shlex.split(env.get("BENCH_GUNICORN_ARGS", "")),
            scenarios=chosen,
            pg_url=pg_url,
            db=db,
            reseed=env.get("BENCH_RESEED", "").strip() not in ("", "0"),
            results=Path(env.get("BENCH_RESULTS", "").strip() or ROOT / "benchmarks" / "results" / "latest.md"),
        )


def log(message: str) -> None:
    print(message, flush=True)


# --- The database ----------------------------------------------------------------


class Databases:
    """The benchmark's databases: a seeded template per user count, cached; a clone per run.

    Loading 100k users takes a minute, cloning the result a few seconds; so the
    seeded database is kept as a template named PREFIX_tpl_USERS_KEY, where KEY
    hashes the files the data depends on (DATASET_SOURCES: the loader, the
    migrations, the code that decides what a SCIM POST stores). A change to any
    of them, or BENCH_RESEED=1, rebuilds it. Each run measures on clones named
    PREFIX_USERS, dropped at the end (POST grows them; the templates stay clean).
    """

    def __init__(self, config: Config):
        self.config = config
        self.created: list[str] = []
        digest = hashlib.sha256()
        for pattern in DATASET_SOURCES:
            for path in sorted(ROOT.glob(pattern)):
                digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
        self.key = digest.hexdigest()[:10]

    def name(self, users: int) -> str:
        return f"{self.config.db}_{users}"

    def template(self, users: int) -> str:
        return f"{self.config.db}_tpl_{users}_{self.key}"

    def url(self, name: str) -> str:
        return f"{self.config.pg_url}/{name}"

    def _admin(self):
        import psycopg

        return psycopg.connect(f"{self.config.pg_url}/postgres", autocommit=True, connect_timeout=10)

    def server_version(self) -> str:
        with self._admin() as conn:
            return conn.execute("SHOW server_version").fetchone()[0]

    def _names(self) -> list[str]:
        with self._admin() as conn:
            return [row[0] for row in conn.execute("SELECT datname FROM pg_database")]

    def drop_leftovers(self) -> None:
        """Clones of a run that was killed before it could clean up, and templates of other versions."""
        clone = re.compile(rf"{re.escape(self.config.db)}_\d+")
        template = re.compile(rf"{re.escape(self.config.db)}_tpl_\d+_[0-9a-f]+")
        current = {self.template(users) for users in self.config.sizes}
        with self._admin() as conn:
            for name in self._names():
                if clone.fullmatch(name) or (template.fullmatch(name) and name not in current):
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def seeded_template(self, users: int, env: dict[str, str], tmp: str) -> dict:
        """The template for `users` users, built first if missing; returns what the loader reported."""
        template = self.template(users)
        if template in self._names() and not self.config.reseed:
            with self._admin() as conn:
                comment = conn.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                                       "WHERE datname = %s", [template]).fetchone()[0]
            return {**json.loads(comment or "{}"), "cached": True}
        building = f"{self.config.db}_tpl_{users}_building"
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')
            conn.execute(f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{building}"')
        env = {**env, "DATABASE_URL": self.url(building)}
        t0 = time.monotonic()
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env,
                       check=True)
        migrate_seconds = round(time.monotonic() - t0, 1)
        out = Path(tmp) / f"seed-{users}.json"
        subprocess.run([sys.executable, "-m", "benchmarks.seed", str(users), str(out)], cwd=ROOT, env=env,
                       check=True)
        info = {**json.loads(out.read_text()), "migrate_seconds": migrate_seconds}
        with self._admin() as conn:
            # Renamed only once complete, so a killed load never leaves a template that looks finished.
            conn.execute(f'ALTER DATABASE "{building}" RENAME TO "{template}"')
            conn.execute(f"COMMENT ON DATABASE \"{template}\" IS {_sql_literal(json.dumps(info))}")
        return {**info, "cached": False}

    def clone(self, users: int) -> str:
        """A fresh copy of the template to measure on (a file copy: seconds, even for 100k users)."""
        name = self.name(users)
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            self.created.append(name)
            version = int(conn.execute("SHOW server_version_num").fetchone()[0])
            strategy = " STRATEGY FILE_COPY" if version >= 150000 else ""  # the default WAL_LOG is slower
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template(users)}"{strategy}')
        return name

    def drop_clones(self) -> None:
        with self._admin() as conn:
            for name in self.created:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.created = []


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# --- gunicorn ----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Gunicorn:
    """gunicorn serving the application (plus /bench/reference) from this checkout."""

    def __init__(self, config: Config, env: dict[str, str], log_path: Path, database: str):
        self.config = config
        self.env = env
        self.log_path = log_path
        self.database = database
        self.process: subprocess.Popen | None = None
        self.port = 0

    @property
    def command(self) -> list[str]:
        return [
            str(Path(sys.executable).parent / "gunicorn"), "scimsync.wsgi",
            "-w", str(self.config.workers), "-b", f"{HOST}:{self.port}", *self.config.gunicorn_args,
        ]

    def describe(self) -> str:
        return " ".join(["gunicorn", "scimsync.wsgi", "-w", str(self.config.workers), "-b", f"{HOST}:PORT",
                         *self.config.gunicorn_args])

    def start(self) -> None:
        self.port = _free_port()
        self.log_file = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            self.command, cwd=ROOT, env=self.env, stdout=self.log_file, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with status {self.process.returncode}:\n{self.log_tail()}")
            try:
                conn = http.client.HTTPConnection(HOST, self.port, timeout=5)
                conn.request("GET", "/bench/reference")
                if conn.getresponse().status == 200:
                    conn.close()
                    return
                conn.close()
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer within 60 s:\n{self.log_tail()}")

    def workers(self) -> list[int]:
        return procstat.children(self.process.pid) if self.process else []

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is None:
            return
        process, self.process = self.process, None
        workers = procstat.children(process.pid)
        if process.poll() is None:
            process.terminate()  # gunicorn's graceful shutdown stops its workers
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        for pid in workers:  # only if the master died without taking them along
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.log_file.close()


# --- The run ---------------------------------------------------------------------


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _loadavg() -> str:
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "?"


def _django_env(config: Config, database_url: str, var_dir: str) -> dict[str, str]:
    """Production settings: DEBUG off, persistent connections (the default CONN_MAX_AGE), whatever the shell says."""
    env = {k: v for k, v in os.environ.items() if k != "SCIMSYNC_DB_CONN_MAX_AGE"}
    env.update(
        DJANGO_SETTINGS_MODULE="benchmarks.bench_settings",
        DATABASE_URL=database_url,
        DEBUG="false",
        ALLOWED_HOSTS=HOST,
        SECRET_KEY=os.environ.get("SECRET_KEY") or "bench-only-insecure-key",
        SCIMSYNC_VAR_DIR=var_dir,  # the embedded broker's folders go here, not into ./var
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    return env


def _report_line(users: int, result: loadgen.Result) -> None:
    log(f"   {users:>7} users  {result.key:<20} {result.requests:>5} req in {result.elapsed:5.1f} s "
        f"= {result.rps:7.1f} req/s  p50 {result.percentile(50) * 1000:6.1f}  "
        f"p95 {result.percentile(95) * 1000:6.1f}  p99 {result.percentile(99) * 1000:6.1f} ms"
        + (f"  ERRORS {result.errors}" if result.errors else ""))
    for sample in result.error_samples[:2]:
        log(f"      {sample}")


def _measure(config: Config, server: Gunicorn, scenario: loadgen.Scenario, headers: dict[str, str],
             users: int, *, requests: int, seconds: float, warmup: int, seed: int) -> loadgen.Result:
    common = dict(host=HOST, port=server.port, headers=headers, users=users, concurrency=config.concurrency)
    if warmup:
        loadgen.run(scenario, requests=warmup, seconds=min(30.0, seconds), seed=seed + 50_000, **common)
    gunicorn_cpu = procstat.CpuMeter(server.workers)
    db_cpu = procstat.CpuMeter(lambda: procstat.backends(server.database))
    gunicorn_cpu.start()
    db_cpu.start()
    result = loadgen.run(scenario, requests=requests, seconds=seconds, seed=seed, **common)
    result.server_cpu = gunicorn_cpu.stop()
    result.db_cpu = db_cpu.stop()
    return result


def run(config: Config, results: list[loadgen.Result], meta: dict) -> None:
    """Load every size, start a gunicorn per size, then measure the sizes back to back.

    Schedule, for R = BENCH_ROUNDS rounds: the reference on every size, then
    each scenario on every size in turn, each run with 1/R of the request and
    time budget; a last reference run per size closes. The runs of one
    (size, scenario) are pooled. Comparisons (a scenario against the
    reference, 100k against 1k) are thus between measurements taken seconds
    apart, not minutes, which matters on a machine shared with other work.
    """
    databases = Databases(config)
    meta["postgres"] = databases.server_version()
    servers: dict[int, Gunicorn] = {}
    with tempfile.TemporaryDirectory(prefix="scimsync-bench-") as tmp:
        try:
            databases.drop_leftovers()
            headers: dict[int, dict[str, str]] = {}
            for users in config.sizes:
                env = _django_env(config, "", tmp)
                t0 = time.monotonic()
                info = databases.seeded_template(users, env, tmp)
                seeded = f"loaded in {info['load_seconds']} s" + (", cached" if info["cached"] else "")
                log(f"== {users} users: template {databases.template(users)} ({seeded})")
                name = databases.clone(users)
                info["clone_seconds"] = round(time.monotonic() - t0, 1) if info["cached"] else None
                meta["loads"][str(users)] = info
                log(f"   cloned to {name}")
                headers[users] = {"Authorization": f"Bearer {info['token']}",
                                  "Content-Type": "application/scim+json", "Accept": "application/scim+json"}
                env["DATABASE_URL"] = databases.url(name)
                servers[users] = Gunicorn(config, env, Path(tmp) / f"gunicorn-{users}.log", name)
                servers[users].start()
            meta["gunicorn"] = servers[config.sizes[0]].describe()

            built = {users: {s.key: s for s in scenarios.build(users)} for users in config.sizes}
            keys = [k for k in config.scenarios if k != "reference"]
            with_reference = "reference" in config.scenarios
            rounds = config.rounds
            steps: list[tuple[str, int]] = []
            for _ in range(rounds):
                if with_reference:
                    steps += [("reference", users) for users in config.sizes]
                steps += [(key, users) for key in keys for users in config.sizes]
            if with_reference:
                steps += [("reference", users) for users in config.sizes]
            runs_of: dict[tuple[int, str], int] = {}
            for key, users in steps:
                runs_of[(users, key)] = runs_of.get((users, key), 0) + 1
            pooled: dict[tuple[int, str], list[loadgen.Result]] = {}
            log(f"== measuring: {rounds} round(s), sizes back to back")
            for n, (key, users) in enumerate(steps):
                share = runs_of[(users, key)]
                done = len(pooled.get((users, key), []))
                result = _measure(
                    config, servers[users], built[users][key], headers[users], users,
                    requests=max(1, config.requests // share), seconds=config.seconds / share,
                    warmup=config.warmup if done == 0 else config.warmup // 4, seed=n,
                )
                _report_line(users, result)
                pooled.setdefault((users, key), []).append(result)
                merged = loadgen.merge(pooled[(users, key)])
                results[:] = [r for r in results if (r.users, r.key) != (users, key)] + [merged]
        except BaseException:
            for users, server in servers.items():
                tail = server.log_tail()
                if tail:
                    log(f"-- last lines of the gunicorn log ({users} users) --\n{tail}")
            raise
        finally:
            for server in servers.values():
                server.stop()
            try:
                databases.drop_clones()
            except Exception as e:  # noqa: BLE001 - report, do not mask the original error
                log(f"warning: could not drop the benchmark databases: {e}")


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt


def main() -> int:
    try:
        config = Config.from_env()
    except ConfigError as e:
        print(f"make bench: {e}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _on_sigterm)
    cores = os.cpu_count() or 1
    meta: dict = {
        "started": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{cores} cores, {platform.system()} {platform.machine()}, Python {platform.python_version()}",
        "commit": _git_commit(), "concurrency": config.concurrency, "requests": config.requests,
        "rounds": config.rounds,
        "seconds": config.seconds, "warmup": config.warmup, "load_before": _loadavg(), "loads": {},
        "gunicorn": "?", "postgres": "?",
    }
    try:
        meta["busy"] = os.getloadavg()[0] >= 0.5 * cores
    except OSError:
        meta["busy"] = False
    results: list[loadgen.Result] = []
    started = time.monotonic()
    failure = None
    try:
        run(config, results, meta)
    except KeyboardInterrupt:
        failure = "interrupted"
    except Exception:  # noqa: BLE001
        failure = traceback.format_exc()
    meta["load_after"] = _loadavg()
    text, passed = report.render(results, meta) if results else ("# scimsync benchmark results\n\nNo results.\n", False)
    text += f"\nTotal run time {time.monotonic() - started:.0f} s.\n"
    if failure:
        text += f"\n**The run did not complete** ({failure.strip().splitlines()[-1]}); the table is partial.\n"
    config.results.parent.mkdir(parents=True, exist_ok=True)
    config.results.write_text(text)
    print()
    print(text)
    print(f"(written to {config.results})")
    if failure:
        print(failure, file=sys.stderr)
        return 2
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
