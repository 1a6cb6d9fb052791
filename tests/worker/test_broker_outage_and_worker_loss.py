"""Deferred syncs never lose work: a real Redis going away and a real worker killed mid-run.

Issue 4: "Broker outage: with the broker unreachable, runs are created and SCIM
pushes still succeed; when the broker comes back, every run completes exactly
once." and "A worker killed mid-run: the run finishes after restart with the
right counts and no duplicates." DESIGN.md, "Deferred syncs (Celery)": a run is
recorded before it is queued, queued runs are re-dispatched when the broker is
back, and running a run twice gives the same result.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.db import transaction
from django.db.models import Count
from django.test import Client
from django.utils import timezone

from scimsync import tasks
from scimsync.models import JournalChange, JournalEntry, SyncRun
from scimsync.sync import runs, services
from tests.conftest import ENTERPRISE
from tests.worker.test_sync_run_worker import _edit, _journal_snapshot, _provision
from users.models import User

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

RUN_TIMEOUT = 90  # seconds: a worker reconnecting to a restarted broker backs off for a while
# Generous: settings.py bounds a publish to a 2 s connect timeout and a 5 s socket
# timeout; without them a click waits minutes (connect) or forever (frozen broker).
CLICK_TIMEOUT = 20


def _wait_until_finished(run_ids, pool, timeout: float = RUN_TIMEOUT) -> list[SyncRun]:
    deadline = time.monotonic() + timeout
    while True:
        found = list(SyncRun.objects.filter(pk__in=run_ids).order_by("pk"))
        if all(r.state in (SyncRun.State.SUCCEEDED, SyncRun.State.FAILED) for r in found):
            assert [r.state for r in found] == [SyncRun.State.SUCCEEDED] * len(run_ids), [r.error for r in found]
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"runs not finished after {timeout} s: {[(r.pk, r.state, r.users_done) for r in found]}")
        time.sleep(0.2)


def _sweep_as_beat_would(*, after: timedelta = runs.REQUEUE_AFTER + timedelta(seconds=1)) -> None:
    """Let `after` pass for the waiting runs, then send beat's sweep task through the broker."""
    SyncRun.objects.filter(state=SyncRun.State.QUEUED).update(queued_at=timezone.now() - after)
    tasks.requeue_stale_sync_runs.delay()


def test_broker_outage_loses_no_run_and_every_run_completes_exactly_once(
    private_redis, celery_workers, live_server, scim, connection, alice
):
    celery_workers.start()
    first = _provision(scim, "first@example.com", title="Analyst")
    second = _provision(scim, "second@example.com", **{ENTERPRISE: {"department": "Sales"}})
    third = _provision(scim, "third@example.com", title="Engineer", **{ENTERPRISE: {"department": "R&D"}})
    _edit(first, "title", "Lead Analyst")
    _edit(second, "department", "Finance")
    _edit(third, "title", "Staff Engineer")

    private_redis.stop()
    admin = Client()
    admin.force_login(alice)

    # Runs are created while the broker is unreachable, through the admin's two
    # "Sync now" actions and through the service, each within a click's patience.
    started = time.monotonic()
    response = admin.post("/admin/users/user/", {"action": "sync_now", "_selected_action": [first.pk],
                                                 "index": 0, "select_across": 0}, follow=True)
    assert response.status_code == 200 and "Queued" in response.content.decode()
    response = admin.post("/admin/mappings/connection/", {"action": "sync_connection_now",
                                                          "_selected_action": [connection.pk],
                                                          "index": 0, "select_across": 0}, follow=True)
    assert response.status_code == 200 and "Queued" in response.content.decode()
    with transaction.atomic():
        service_run = runs.sync_run_start(connection=connection, user_ids=[second.pk])
    assert time.monotonic() - started < 3 * CLICK_TIMEOUT

    # SCIM pushes do not need the broker: applied in the request, read back at once.
    response = scim.patch(f"/Users/{third.scim_id}", [
        {"op": "replace", "path": f"{ENTERPRISE}:department", "value": "Research"}])
    assert response.status_code == 200, response.text
    assert response.json()["title"] == "Engineer"  # the push re-asserted the mapped title
    fourth = _provision(scim, "fourth@example.com", title="Intern")

    waiting = list(SyncRun.objects.order_by("pk"))
    assert len(waiting) == 3 and service_run.pk == waiting[2].pk
    assert {r.state for r in waiting} == {SyncRun.State.QUEUED}
    assert all(r.users_done == 0 for r in waiting)

    private_redis.start()  # back on the same port, empty: no message survived
    _sweep_as_beat_would()
    done = _wait_until_finished([r.pk for r in waiting], celery_workers)

    by_id = {r.pk: r for r in done}
    user_run, connection_run, second_run = (by_id[r.pk] for r in waiting)
    assert (user_run.users_total, user_run.users_done) == (1, 1)
    # Counted when it started: fourth arrived after it was created.
    assert connection_run.user_ids == [] and (connection_run.users_total, connection_run.users_done) == (4, 4)
    assert (second_run.users_total, second_run.users_done) == (1, 1)
    # Each lost edit is overwritten once, by whichever run reached it first.
    assert sum(r.lost_edits for r in done) == 2 and sum(r.attributes_overwritten for r in done) == 2
    lost = JournalChange.objects.filter(lost_edit=True).values_list("entry__user_id", "attribute", "entry__kind")
    assert sorted(lost) == sorted([
        (first.pk, "title", "sync"), (second.pk, "department", "sync"), (third.pk, "title", "push"),
    ])
    for user, attribute, value in [(first, "title", "Analyst"), (second, "department", "Sales"),
                                   (third, "department", "Research"), (fourth, "title", "Intern")]:
        assert getattr(User.objects.get(pk=user.pk), attribute) == value

    # Exactly once: a later sweep re-sends nothing, and a duplicate delivery changes nothing.
    journal = _journal_snapshot()
    assert runs.sync_runs_requeue_stale(now=timezone.now() + timedelta(hours=1)) == 0
    for run in done:
        tasks.execute_sync_run.delay(run.pk)
    marker = runs.sync_run_start(connection=connection, user_ids=[fourth.pk])  # queued behind the duplicates
    _wait_until_finished([marker.pk], celery_workers)
    assert _journal_snapshot() == journal
    assert not JournalEntry.objects.filter(sync_run_id__in=[r.pk for r in done]).values("user_id", "sync_run_id") \
        .annotate(n=Count("id")).filter(n__gt=1).exists()
    assert [(r.users_done, r.lost_edits) for r in SyncRun.objects.filter(pk__in=by_id).order_by("pk")] == [
        (r.users_done, r.lost_edits) for r in done
    ]


def test_a_frozen_broker_does_not_hang_run_creation(private_redis, connection, alice):
    """A broker that keeps the connection open but stops answering (a frozen host)."""
    user = services.user_provision(connection=connection, received={"user_name": "kim", "title": "Analyst"},
                                   extras={}, actor=services.Actor("SCIM POST"))
    services.user_local_edit(user=user, attribute="title", value="Lead", actor=services.Actor("alice"))
    private_redis.freeze()
    try:
        admin = Client()
        admin.force_login(alice)
        started = time.monotonic()
        response = admin.post("/admin/users/user/", {"action": "sync_now", "_selected_action": [user.pk],
                                                     "index": 0, "select_across": 0}, follow=True)
        assert time.monotonic() - started < CLICK_TIMEOUT
    finally:
        private_redis.thaw()
    assert response.status_code == 200 and "Queued" in response.content.decode()
    assert SyncRun.objects.get().state == SyncRun.State.QUEUED


def test_a_worker_killed_mid_run_is_resumed_with_exact_counts_and_no_duplicates(celery_workers, connection):
    users = []
    for i in range(60):
        user = services.user_provision(connection=connection, received={
            "user_name": f"u{i:03d}", "title": "Analyst", "department": "Sales"}, extras={},
            actor=services.Actor("SCIM POST"))
        if i % 2 == 0:
            services.user_local_edit(user=user, attribute="title", value="Lead", actor=services.Actor("alice"))
        if i % 3 == 0:
            services.user_local_edit(user=user, attribute="department", value="Ops", actor=services.Actor("alice"))
        users.append(user)
    edits = 30 + 20
    worker = celery_workers.start(SCIMSYNC_SYNC_BATCH_SIZE="5")
    with transaction.atomic():
        run = runs.sync_run_start(connection=connection)
    assert run.state == SyncRun.State.HELD  # 30 of 60 users at risk: the safeguard holds it
    assert runs.sync_run_approve(run=run, approved_by=None)

    # Wait for two committed batches, then block the next checkpoint write (a lock on
    # the run row), so the worker is caught inside a batch, and kill it there.
    deadline = time.monotonic() + RUN_TIMEOUT
    while SyncRun.objects.get(pk=run.pk).users_done < 10:
        assert time.monotonic() < deadline, "the worker did not start the run"
        time.sleep(0.05)
    with transaction.atomic():
        SyncRun.objects.filter(pk=run.pk).update(error="")  # holds the row (PostgreSQL) or the database (SQLite)
        time.sleep(1.0)  # the worker reaches the lock
        celery_workers.kill(worker)
    killed = SyncRun.objects.get(pk=run.pk)
    assert killed.state == SyncRun.State.RUNNING and 10 <= killed.users_done < 60
    assert killed.users_done == User.objects.filter(pk__lte=killed.checkpoint, connection=connection).count()
    # Nothing of the interrupted batch survived: journal rows only for committed batches.
    synced = JournalEntry.objects.filter(sync_run=run).values_list("user_id", flat=True)
    assert all(pk <= killed.checkpoint for pk in synced)

    celery_workers.start(SCIMSYNC_SYNC_BATCH_SIZE="5")
    # A fresh heartbeat protects the run from a second worker ...
    tasks.execute_sync_run.delay(run.pk)
    marker = runs.sync_run_start(connection=connection, user_ids=[users[1].pk])
    _wait_until_finished([marker.pk], celery_workers)
    assert SyncRun.objects.get(pk=run.pk).checkpoint == killed.checkpoint
    # ... until the lease expires; then beat's sweep resumes it after the checkpoint.
    SyncRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - runs.lease() - timedelta(seconds=1))
    _sweep_as_beat_would()
    (done,) = _wait_until_finished([run.pk], celery_workers)

    assert (done.users_total, done.users_done) == (60, 60)
    assert (done.attributes_overwritten, done.lost_edits) == (edits, edits)
    assert done.started_at == killed.started_at
    lost = JournalChange.objects.filter(entry__sync_run=run, lost_edit=True)
    assert lost.count() == edits
    assert sorted(lost.values_list("entry__user__user_name", "attribute")) == sorted(
        [(f"u{i:03d}", "title") for i in range(0, 60, 2)] + [(f"u{i:03d}", "department") for i in range(0, 60, 3)]
    )
    per_user = JournalEntry.objects.filter(sync_run=run).values("user_id").annotate(n=Count("id"))
    assert max(row["n"] for row in per_user) == 1
    assert set(User.objects.filter(connection=connection).values_list("title", "department")) == {
        ("Analyst", "Sales")}
