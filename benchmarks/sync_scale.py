"""A connection-wide deferred sync at scale, on a real Celery worker (issue 4, "Scale").

    DATABASE_URL=postgres://... REDIS_URL=redis://... \\
        .venv/bin/python -m benchmarks.sync_scale --users 100000

Seeds N provisioned users of a fresh connection with bulk_create (every user
has IdP values for six mapped attributes; a share of them carry local edits of
`title` and `department`, so the sync has lost edits to journal), starts
`celery worker --pool solo` on a private queue, starts a connection-wide
SyncRun through `sync_run_start` (approving it, as an admin would, when the
safeguard holds it) and polls the run's progress until it finishes.

Reports wall time (queued to succeeded), users/s, attributes overwritten, lost
edits journaled, the progress the admin saw, and the worker's resident memory:
after it became ready, at each quarter of the run, and its peak (VmHWM from
/proc/<pid>/status). Flat memory means the peak does not grow with N.

The connection and its users are deleted at the end unless --keep.
Needs PostgreSQL and Redis (SQLite serialises the writes and says nothing about
production); `--results PATH` also writes the table as Markdown.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import django

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 60.0
SEED_CHUNK = 5000
STATE_ATTRIBUTES = ("user_name", "external_id", "display_name", "title", "department", "email_work")


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sync_scale", description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--edited-share", type=float, default=0.10,
                        help="share of users with a local edit of title (half as many also of department)")
    parser.add_argument("--batch-size", type=int, default=None, help="SCIMSYNC_SYNC_BATCH_SIZE for the worker")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait for the run")
    parser.add_argument("--keep", action="store_true", help="keep the seeded connection and users")
    parser.add_argument("--results", default=None, help="also write the report as Markdown to this path")
    return parser.parse_args(argv)


def rss_kib(pid: int, key: str) -> int | None:
    """VmRSS (now) or VmHWM (peak) of a process, in KiB; None off Linux or once it exited."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def ensure_database() -> None:
    """Create the PostgreSQL database of DATABASE_URL when it does not exist yet."""
    import psycopg
    from django.conf import settings

    db = settings.DATABASES["default"]
    if "postgresql" not in db["ENGINE"]:
        raise SystemExit("sync_scale: DATABASE_URL must name a PostgreSQL database")
    params = {k: v for k, v in {"host": db.get("HOST"), "port": db.get("PORT"), "user": db.get("USER"),
                                "password": db.get("PASSWORD")}.items() if v}
    with psycopg.connect(dbname="postgres", autocommit=True, **params) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db["NAME"]]).fetchone():
            conn.execute(f'CREATE DATABASE "{db["NAME"]}"')


def seed(total: int, edited_share: float):
    """A connection (generic preset: all mapped) with `total` users; returns (connection, edited, departed)."""
    from django.contrib.auth.hashers import make_password
    from django.db import transaction
    from django.utils import timezone

    from mappings.services import connection_create
    from scimsync.models import AttributeState
    from users.models import User, name_key

    connection = connection_create(name=f"sync-scale {uuid.uuid4().hex[:8]}", preset="generic")
    now = timezone.now()
    unusable = make_password(None)
    title_every = max(1, round(1 / edited_share)) if edited_share > 0 else 0
    dept_every = title_every * 2
    edited = departed = 0
    for start in range(0, total, SEED_CHUNK):
        with transaction.atomic():
            users = []
            for i in range(start, min(total, start + SEED_CHUNK)):
                name = f"user{i:07d}@example.com"
                users.append(User(
                    connection=connection, user_name=name, user_name_key=name_key(name), external_id=f"ext-{i}",
                    display_name=f"User {i}", title="Analyst", department=f"Dept {i % 50}", email_work=name,
                    password=unusable,
                ))
            User.objects.bulk_create(users)
            states = []
            for user, i in zip(users, range(start, start + len(users)), strict=True):
                idp = {"user_name": user.user_name, "external_id": user.external_id,
                       "display_name": user.display_name, "title": "Analyst", "department": user.department,
                       "email_work": user.email_work}
                local = {}
                if title_every and i % title_every == 0:
                    local["title"] = "Lead Analyst"
                if dept_every and i % dept_every == 0:
                    local["department"] = "Skunkworks"
                for attribute in STATE_ATTRIBUTES:
                    state = AttributeState(user=user, attribute=attribute, idp_value=idp[attribute],
                                           idp_received_at=now)
                    if attribute in local:
                        # An admin's edit of a mapped attribute: at risk until the sync overwrites it.
                        setattr(user, attribute, local[attribute])
                        state.local_edit_by_label = "alice"
                        state.local_edit_at = now
                        state.local_edit_before = idp[attribute]
                        state.at_risk = True
                    states.append(state)
                edited += "title" in local
                departed += "department" in local
            AttributeState.objects.bulk_create(states, batch_size=SEED_CHUNK)
            User.objects.bulk_update([u for u in users if u.title != "Analyst" or u.department == "Skunkworks"],
                                     ["title", "department"], batch_size=SEED_CHUNK)
        _analyze(User, AttributeState)
    return connection, edited, departed


def _analyze(*models) -> None:
    """Fresh planner statistics, as autovacuum keeps them on a production server. (Without
    them, on a server with autovacuum off, PostgreSQL planned each batch's `id IN (...)`
    as a scan of the whole table: 20 s a batch instead of milliseconds.)"""
    from django.db import connection as db

    with db.cursor() as cursor:
        for model in models:
            cursor.execute(f"ANALYZE {db.ops.quote_name(model._meta.db_table)}")


def start_worker(queue: str, log_path: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    celery = Path(sys.executable).parent / "celery"
    command = [str(celery)] if celery.exists() else [sys.executable, "-m", "celery"]
    command += ["-A", "scimsync", "worker", "-l", "warning", "--pool", "solo", "-Q", queue,
                "-n", f"{queue}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"]
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, start_new_session=True)
    return worker


def wait_ready(worker: subprocess.Popen, queue: str) -> None:
    """Ready when the worker answers a ping on its private queue's node."""
    from scimsync.celery import app

    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise SystemExit(f"sync_scale: the worker exited ({worker.returncode}) before it was ready")
        # --without-gossip/mingle/heartbeat still answer broadcast pings.
        if app.control.ping(destination=[f"{queue}@{os.uname().nodename}"], timeout=1.0):
            return
    raise SystemExit(f"sync_scale: the worker was not ready after {READY_TIMEOUT:.0f} s")


def run(args) -> dict:
    from django.conf import settings
    from django.db import transaction

    from scimsync.celery import app
    from scimsync.models import JournalChange, SyncRun
    from scimsync.sync import runs
    from users.models import User

    started = time.monotonic()
    connection, edited, departed = seed(args.users, args.edited_share)
    seed_seconds = time.monotonic() - started
    print(f"seeded {args.users} users ({edited} title and {departed} department edits) in {seed_seconds:.1f} s",
          flush=True)
    queue = f"sync-scale-{uuid.uuid4().hex[:8]}"
    log_path = Path(settings.VAR_DIR) / f"{queue}.log"
    Path(settings.VAR_DIR).mkdir(parents=True, exist_ok=True)
    worker = start_worker(queue, log_path)
    result: dict = {"users": args.users, "seed_seconds": seed_seconds, "edited": edited, "departed": departed,
                    "batch_size": settings.SCIMSYNC["SYNC_BATCH_SIZE"], "connection": connection}
    try:
        wait_ready(worker, queue)
        result["rss_ready_kib"] = rss_kib(worker.pid, "VmRSS")
        app.conf.task_default_queue = queue
        admin = User.objects.create_superuser(f"bench-{queue}", None)
        with transaction.atomic():
            sync_run = runs.sync_run_start(connection=connection, requested_by=admin)
        if sync_run.state == SyncRun.State.HELD:
            runs.sync_run_approve(run=sync_run, approved_by=admin)
        t0 = time.monotonic()
        samples, next_quarter = [], 0.25
        while True:
            sync_run.refresh_from_db()
            if sync_run.state in (SyncRun.State.SUCCEEDED, SyncRun.State.FAILED):
                break
            if worker.poll() is not None:
                raise SystemExit(f"sync_scale: the worker died ({worker.returncode}); see {log_path}")
            if time.monotonic() - t0 > args.timeout:
                raise SystemExit(f"sync_scale: run {sync_run.pk} not done after {args.timeout:.0f} s")
            done = sync_run.users_done / max(1, sync_run.users_total)
            if done >= next_quarter:
                samples.append((sync_run.users_done, time.monotonic() - t0, rss_kib(worker.pid, "VmRSS")))
                print(f"  {sync_run.users_done}/{sync_run.users_total} users after {samples[-1][1]:.1f} s, "
                      f"worker RSS {samples[-1][2] / 1024:.0f} MiB", flush=True)
                next_quarter = (int(done * 4) + 1) / 4
            time.sleep(0.5)
        wall = time.monotonic() - t0
        result.update(
            state=sync_run.state, error=sync_run.error, wall_seconds=wall, users_done=sync_run.users_done,
            users_total=sync_run.users_total, overwritten=sync_run.attributes_overwritten,
            lost_edits=sync_run.lost_edits, samples=samples, rss_peak_kib=rss_kib(worker.pid, "VmHWM"),
            lost_edits_journaled=JournalChange.objects.filter(entry__sync_run=sync_run, lost_edit=True).count(),
            duplicate_entries=duplicate_sync_entries(sync_run), run_id=sync_run.pk,
            queries_note=None,
        )
    finally:
        if worker.poll() is None:
            worker.terminate()
            try:
                worker.wait(20)
            except subprocess.TimeoutExpired:
                worker.kill()
        if not args.keep:
            delete_connection(connection)
    return result


def duplicate_sync_entries(sync_run) -> int:
    """Users journaled more than once by this run (a resumed batch must not journal twice)."""
    from django.db.models import Count

    from scimsync.models import JournalEntry

    return (JournalEntry.objects.filter(sync_run=sync_run).values("user_id").annotate(n=Count("id"))
            .filter(n__gt=1).count())


def delete_connection(connection) -> None:
    """Remove what the benchmark wrote, in SQL: the ORM's cascade would load 100k rows."""
    from django.db import connection as db
    from django.db import transaction

    from mappings.models import AttributeMapping, Connection, ScimToken
    from scimsync.models import AttributeState, JournalChange, JournalEntry, ScimRequestLog, SyncRun
    from users.models import User, UserPageBucket

    t = {m: m._meta.db_table for m in (AttributeMapping, Connection, ScimToken, AttributeState, JournalChange,
                                       JournalEntry, ScimRequestLog, SyncRun, User, UserPageBucket)}
    with transaction.atomic(), db.cursor() as cur:
        cid = connection.pk
        cur.execute(f"DELETE FROM {t[JournalChange]} WHERE entry_id IN "
                    f"(SELECT id FROM {t[JournalEntry]} WHERE connection_id = %s)", [cid])
        cur.execute(f"DELETE FROM {t[JournalEntry]} WHERE connection_id = %s", [cid])
        cur.execute(f"DELETE FROM {t[AttributeState]} WHERE user_id IN "
                    f"(SELECT id FROM {t[User]} WHERE connection_id = %s)", [cid])
        cur.execute(f"DELETE FROM {t[SyncRun]} WHERE connection_id = %s", [cid])
        cur.execute(f"DELETE FROM {t[ScimRequestLog]} WHERE connection_id = %s", [cid])
        cur.execute(f"DELETE FROM {t[User]} WHERE connection_id = %s", [cid])
        # After the users: their delete trigger counts them out of these (users.page_index).
        cur.execute(f"DELETE FROM {t[UserPageBucket]} WHERE connection_id = %s", [cid])
        cur.execute(f"DELETE FROM {t[ScimToken]} WHERE connection_id = %s", [cid])
        cur.execute(f"DELETE FROM {t[AttributeMapping]} WHERE connection_id = %s", [cid])
        cur.execute(f"DELETE FROM {t[Connection]} WHERE id = %s", [cid])


def report(result: dict) -> str:
    mib = lambda kib: f"{kib / 1024:.0f} MiB" if kib else "n/a"  # noqa: E731
    lines = [
        f"| users | {result['users']:,} |",
        f"| batch size | {result['batch_size']} |",
        f"| run state | {result['state']} {result['error']} |",
        f"| wall time (queued to succeeded) | {result['wall_seconds']:.1f} s |",
        f"| users/s | {result['users_done'] / result['wall_seconds']:,.0f} |",
        f"| users done / total | {result['users_done']:,} / {result['users_total']:,} |",
        f"| attributes overwritten | {result['overwritten']:,} (seeded edits: {result['edited'] + result['departed']:,}) |",
        f"| lost edits (run counter / journaled) | {result['lost_edits']:,} / {result['lost_edits_journaled']:,} |",
        f"| users journaled twice by the run | {result['duplicate_entries']} |",
        f"| worker RSS when ready | {mib(result['rss_ready_kib'])} |",
        f"| worker RSS at each quarter | {', '.join(mib(s[2]) for s in result['samples']) or 'n/a'} |",
        f"| worker peak RSS (VmHWM) | {mib(result['rss_peak_kib'])} |",
        f"| seeding (bulk_create) | {result['seed_seconds']:.1f} s |",
    ]
    return "| measure | value |\n|---|---|\n" + "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv if argv is not None else sys.argv[1:])
    if args.batch_size:
        os.environ["SCIMSYNC_SYNC_BATCH_SIZE"] = str(args.batch_size)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scimsync.settings")
    os.environ.setdefault("SECRET_KEY", "bench-only-insecure-key")
    if not (os.environ.get("REDIS_URL") or os.environ.get("CELERY_BROKER_URL", "").startswith("redis")):
        raise SystemExit("sync_scale: set REDIS_URL (the benchmark measures the production broker)")
    django.setup()
    ensure_database()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    result = run(args)
    table = report(result)
    print(table)
    if args.results:
        Path(args.results).write_text(table)
    return 0 if result["state"] == "succeeded" and result["duplicate_entries"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
