"""`make bench`: SCIM over HTTP, gunicorn on PostgreSQL, at 1k and 100k users, against a bare view.

For each user count: (re)create a dedicated database, migrate it, load the
users (benchmarks.seed), start gunicorn with the application's settings plus
a reference view (benchmarks.bench_settings), and measure each scenario of
benchmarks.scenarios with benchmarks.loadgen. The table goes to stdout and to
benchmarks/results/latest.md. gunicorn is stopped and the database dropped at
the end, also on failure or Ctrl-C. docs/benchmarks.md explains the numbers.

Environment (defaults in brackets):
  BENCH_USERS        user counts, comma-separated            [1000,100000]
  BENCH_REQUESTS     most requests per scenario               [3000]
  BENCH_SECONDS      most seconds per scenario                [20]
  BENCH_CONCURRENCY  client processes sending at once         [4]
  BENCH_WARMUP       unmeasured requests before a scenario    [40]
  BENCH_WORKERS      gunicorn workers                         [2]
  BENCH_GUNICORN_ARGS  extra gunicorn arguments               []
  BENCH_SCENARIOS    subset to run, comma-separated           [all]
  BENCH_PG_URL       PostgreSQL server, no database           [postgres://postgres@127.0.0.1:5432]
  BENCH_DB           database to create and drop              [scimsync_bench]
  BENCH_RESULTS      report path                              [benchmarks/results/latest.md]
Exit status: 0 all targets met, 1 a target failed, 2 the run itself failed.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import platform
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
    gunicorn_args: list[str]
    scenarios: list[str]
    pg_url: str
    db: str
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
            seconds = float(env.get("BENCH_SECONDS", "").strip() or 20)
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
        db = env.get("BENCH_DB", "").strip() or "scimsync_bench"
        if "bench" not in db or not db.replace("_", "").isalnum():
            raise ConfigError(f"BENCH_DB={db!r}: the database is dropped, so its name must contain 'bench' "
                              "and only letters, digits and underscores")
        return cls(
            sizes=sizes,
            requests=integer("BENCH_REQUESTS", 3000),
            seconds=seconds,
            concurrency=integer("BENCH_CONCURRENCY", 4),
            warmup=integer("BENCH_WARMUP", 40, minimum=0),
            workers=integer("BENCH_WORKERS", 2),
            gunicorn_args=shlex.split(env.get("BENCH_GUNICORN_ARGS", "")),
            scenarios=chosen,
            pg_url=(env.get("BENCH_PG_URL", "").strip() or "postgres://postgres@127.0.0.1:5432").rstrip("/"),
            db=db,
            results=Path(env.get("BENCH_RESULTS", "").strip() or ROOT / "benchmarks" / "results" / "latest.md"),
        )


def log(message: str) -> None:
    print(message, flush=True)


# --- The database ----------------------------------------------------------------


class Database:
    """The dedicated benchmark database: dropped and recreated for each user count, dropped at the end."""

    def __init__(self, config: Config):
        self.config = config
        self.url = f"{config.pg_url}/{config.db}"

    def _admin(self):
        import psycopg

        return psycopg.connect(f"{self.config.pg_url}/postgres", autocommit=True, connect_timeout=10)

    def server_version(self) -> str:
        with self._admin() as conn:
            return conn.execute("SHOW server_version").fetchone()[0]

    def recreate(self) -> None:
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.config.db}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{self.config.db}"')

    def drop(self) -> None:
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.config.db}" WITH (FORCE)')


# --- gunicorn ----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Gunicorn:
    """gunicorn serving the application (plus /bench/reference) from this checkout."""

    def __init__(self, config: Config, env: dict[str, str], log_path: Path):
        self.config = config
        self.env = env
        self.log_path = log_path
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


def _django_env(config: Config, database: Database, var_dir: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="benchmarks.bench_settings",
        DATABASE_URL=database.url,
        DEBUG="false",
        ALLOWED_HOSTS=HOST,
        SECRET_KEY=os.environ.get("SECRET_KEY") or "bench-only-insecure-key",
        SCIMSYNC_VAR_DIR=var_dir,  # the embedded broker's folders go here, not into ./var
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    return env


def _measure(config: Config, server: Gunicorn, scenario: loadgen.Scenario,
             headers: dict[str, str], users: int, seed: int) -> loadgen.Result:
    common = dict(host=HOST, port=server.port, headers=headers, users=users, concurrency=config.concurrency)
    if config.warmup:
        loadgen.run(scenario, requests=config.warmup, seconds=min(30.0, config.seconds), seed=seed + 500, **common)
    gunicorn_cpu = procstat.CpuMeter(server.workers)
    db_cpu = procstat.CpuMeter(lambda: procstat.backends(config.db))
    gunicorn_cpu.start()
    db_cpu.start()
    result = loadgen.run(scenario, requests=config.requests, seconds=config.seconds, seed=seed, **common)
    result.server_cpu = gunicorn_cpu.stop()
    result.db_cpu = db_cpu.stop()
    return result


def run(config: Config, results: list[loadgen.Result], meta: dict) -> None:
    database = Database(config)
    meta["postgres"] = database.server_version()
    with tempfile.TemporaryDirectory(prefix="scimsync-bench-") as tmp:
        env = _django_env(config, database, tmp)
        server = Gunicorn(config, env, Path(tmp) / "gunicorn.log")
        meta["gunicorn"] = server.describe()
        try:
            for size_index, users in enumerate(config.sizes):
                log(f"== {users} users: database {config.db}")
                database.recreate()
                t0 = time.monotonic()
                subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
                               cwd=ROOT, env=env, check=True)
                migrate_seconds = round(time.monotonic() - t0, 1)
                seed_out = Path(tmp) / f"seed-{users}.json"
                subprocess.run([sys.executable, "-m", "benchmarks.seed", str(users), str(seed_out)],
                               cwd=ROOT, env=env, check=True)
                info = json.loads(seed_out.read_text())
                info["migrate_seconds"] = migrate_seconds
                meta["loads"][str(users)] = info
                log(f"   loaded {users} users in {info['load_seconds']} s (migrate {migrate_seconds} s)")
                headers = {"Authorization": f"Bearer {info['token']}", "Content-Type": "application/scim+json",
                           "Accept": "application/scim+json"}
                server.start()
                try:
                    for n, scenario in enumerate(scenarios.build(users)):
                        if scenario.key not in config.scenarios:
                            continue
                        result = _measure(config, server, scenario, headers, users,
                                          seed=size_index * 100 + n)
                        results.append(result)
                        log(f"   {scenario.key:<20} {result.requests:>6} req in {result.elapsed:5.1f} s "
                            f"= {result.rps:7.1f} req/s  p50 {result.percentile(50) * 1000:7.1f} ms  "
                            f"p95 {result.percentile(95) * 1000:7.1f} ms  p99 {result.percentile(99) * 1000:7.1f} ms"
                            + (f"  ERRORS {result.errors}" if result.errors else ""))
                        for sample in result.error_samples[:2]:
                            log(f"      {sample}")
                finally:
                    server.stop()
        except BaseException:
            tail = server.log_tail()
            if tail:
                log(f"-- last lines of the gunicorn log --\n{tail}")
            raise
        finally:
            server.stop()
            try:
                database.drop()
            except Exception as e:  # noqa: BLE001 - report, do not mask the original error
                log(f"warning: could not drop database {config.db}: {e}")


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
