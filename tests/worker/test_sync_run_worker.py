"""Deferred syncs end to end: a sync run queued on commit, executed by a real Celery worker.

DESIGN.md, "Deferred syncs (Celery)": the run is a row first, then a message; a
worker process claims it and syncs its users; running it twice gives the same result.
"""

from __future__ import annotations

import time

import pytest
from django.db import transaction
from django.test import Client

from scimsync.models import JournalChange, JournalEntry, SyncRun
from scimsync.sync import runs, services
from tests.conftest import ENTERPRISE, USER_SCHEMA
from users.models import User

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

RUN_TIMEOUT = 30  # seconds for the worker to finish a run


def _provision(scim, user_name: str, **extra) -> User:
    body = {"schemas": [USER_SCHEMA, ENTERPRISE], "userName": user_name, **extra}
    response = scim.post("/Users", body)
    assert response.status_code == 201, response.text
    return User.objects.get(scim_id=response.json()["id"])


def _wait_for_run(run_id: int, worker, timeout: float = RUN_TIMEOUT) -> SyncRun:
    """Poll the database until the worker has finished the run; fail with its state otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        run = SyncRun.objects.get(pk=run_id)
        if run.state in (SyncRun.State.SUCCEEDED, SyncRun.State.FAILED):
            assert run.state == SyncRun.State.SUCCEEDED, f"sync run {run_id} failed: {run.error}"
            return run
        if worker.process.poll() is not None:
            code = worker.process.returncode
            pytest.fail(f"the Celery worker exited ({code}) with sync run {run_id} {run.state}")
        if time.monotonic() > deadline:
            pytest.fail(
                f"sync run {run_id} is still {run.state!r} after {timeout} s "
                f"(users_done={run.users_done}/{run.users_total}); was it queued to {worker.queue}?"
            )
        time.sleep(0.2)


def _journal_snapshot() -> list[tuple]:
    entries = JournalEntry.objects.order_by("pk").values_list(
        "pk", "kind", "user_id", "sync_run_id", "source"
    )
    changes = JournalChange.objects.order_by("pk").values_list(
        "pk", "entry_id", "attribute", "outcome", "old_value", "new_value", "lost_edit"
    )
    return list(entries) + list(changes)


def _edit(user: User, attribute: str, value: str) -> None:
    """A local edit by alice, made in the product."""
    assert services.user_local_edit(
        user=user, attribute=attribute, value=value, actor=services.Actor("alice")
    )


def _counts(run: SyncRun) -> tuple:
    run.refresh_from_db()
    return (run.state, run.users_total, run.users_done, run.attributes_overwritten, run.lost_edits,
            run.checkpoint, run.finished_at)


def test_sync_now_runs_on_the_worker_and_journals_the_lost_edit(
    celery_worker_process, scim, connection
):
    user = _provision(scim, "alex.doe@example.com", title="Analyst")
    _edit(user, "title", "Lead Analyst")
    user.refresh_from_db()
    assert user.title == "Lead Analyst"

    with transaction.atomic():
        run = runs.sync_run_start(connection=connection, user_ids=[user.pk])
        # The row is written first; the message leaves on commit.
        assert SyncRun.objects.get(pk=run.pk).state == SyncRun.State.QUEUED

    run = _wait_for_run(run.pk, celery_worker_process)
    assert (run.users_total, run.users_done) == (1, 1)
    assert run.attributes_overwritten == 1
    assert run.lost_edits == 1
    assert run.started_at is not None and run.finished_at is not None
    assert run.checkpoint == user.pk
    assert run.error == ""

    user.refresh_from_db()
    assert user.title == "Analyst"

    entry = JournalEntry.objects.get(user=user, kind=JournalEntry.Kind.SYNC)
    assert entry.sync_run_id == run.pk
    assert entry.source == f"sync run {run.pk}"
    change = entry.changes.get()
    assert change.attribute == "title"
    assert change.lost_edit and change.outcome == JournalChange.Outcome.LOST_EDIT
    assert (change.old_value, change.new_value) == ("Lead Analyst", "Analyst")
    assert change.lost_edit_by_label == "alice"
    assert change.lost_edit_at is not None


def test_admin_sync_now_action_queues_a_run_the_worker_executes(
    celery_worker_process, scim, connection, alice
):
    first = _provision(scim, "first@example.com", title="Analyst")
    second = _provision(scim, "second@example.com", **{ENTERPRISE: {"department": "Sales"}})
    untouched = _provision(scim, "third@example.com", title="Engineer")
    _edit(first, "title", "Lead Analyst")
    _edit(second, "department", "Finance")
    _edit(untouched, "title", "Staff Engineer")

    client = Client()
    client.force_login(alice)
    response = client.post(
        "/admin/users/user/",
        {"action": "sync_now", "_selected_action": [first.pk, second.pk],
         "index": 0, "select_across": 0},
        follow=True,
    )
    assert response.status_code == 200
    assert "Queued" in response.content.decode()

    started = list(SyncRun.objects.filter(connection=connection).order_by("pk"))
    assert len(started) == 1  # both users belong to one connection: one run
    run = _wait_for_run(started[0].pk, celery_worker_process)
    assert run.requested_by_id == alice.pk
    assert run.reason == SyncRun.Reason.MANUAL
    assert sorted(run.user_ids) == sorted([first.pk, second.pk])
    assert (run.users_total, run.users_done) == (2, 2)
    assert run.attributes_overwritten == 2
    assert run.lost_edits == 2

    first.refresh_from_db()
    second.refresh_from_db()
    untouched.refresh_from_db()
    assert first.title == "Analyst"
    assert second.department == "Sales"
    assert untouched.title == "Staff Engineer"  # not selected: its local edit stays
    lost = JournalChange.objects.filter(entry__sync_run=run, lost_edit=True)
    assert sorted(lost.values_list("entry__user_id", "attribute")) == sorted(
        [(first.pk, "title"), (second.pk, "department")]
    )
    assert not JournalEntry.objects.filter(user=untouched, kind=JournalEntry.Kind.SYNC).exists()


def test_executing_a_finished_run_again_changes_nothing(celery_worker_process, scim, connection):
    user = _provision(scim, "alex.doe@example.com", title="Analyst")
    _edit(user, "title", "Lead Analyst")
    with transaction.atomic():
        run = runs.sync_run_start(connection=connection, user_ids=[user.pk])
    run = _wait_for_run(run.pk, celery_worker_process)
    assert (run.users_done, run.attributes_overwritten, run.lost_edits) == (1, 1, 1)

    journal = _journal_snapshot()
    counts = _counts(run)
    version = User.objects.get(pk=user.pk).version

    runs.sync_run_execute(run_id=run.pk)
    runs.sync_run_execute(run_id=run.pk)

    assert _journal_snapshot() == journal
    assert _counts(run) == counts
    assert User.objects.get(pk=user.pk).version == version
    assert User.objects.get(pk=user.pk).title == "Analyst"


def test_a_mapping_change_too_large_for_the_request_moves_flags_on_the_worker(
    celery_worker_process, scim, connection, alice, live_server, settings
):
    """DESIGN.md, "Deferred syncs": "recomputing at-risk flags after a mapping change, for every
    user of the connection". Above SCIMSYNC_INLINE_RECOMPUTE_MAX_USERS the change made through
    the REST API answers with a run; the real worker moves the flags, overwriting nothing."""
    from scimsync.api.services import api_key_create
    from scimsync.models import AttributeState
    from tests.api.conftest import Api

    settings.SCIMSYNC = {**settings.SCIMSYNC, "INLINE_RECOMPUTE_MAX_USERS": 1}
    users = [_provision(scim, f"u{i}@example.com", title="Analyst") for i in range(3)]
    for user in users[:2]:
        _edit(user, "title", "Lead")
    api = Api(live_server.url, api_key_create(owner=alice, scope="read_write", label="tests")[1])

    answer = api.request("PUT", f"/connections/{connection.pk}/mappings/title/",
                         json={"state": "unmapped", "apply": "always"})
    assert answer.status_code == 200, answer.text
    run_id = answer.json()["changes"][0]["sync_run"]
    assert run_id is not None

    run = _wait_for_run(run_id, celery_worker_process)
    assert (run.attribute, run.reason, run.users_done, run.flags_cleared) == ("title", "mapping_change", 3, 2)
    assert not AttributeState.objects.filter(user__connection=connection, at_risk=True).exists()
    assert sorted(User.objects.filter(connection=connection).values_list("title", flat=True)) == [
        "Analyst", "Lead", "Lead"]  # the local values stay: unmapped, they are the product's
    assert not JournalEntry.objects.filter(kind=JournalEntry.Kind.SYNC).exists()
    detail = api.request("GET", f"/sync-runs/{run_id}/").json()
    assert (detail["state"], detail["flags_cleared"], detail["progress"]) == ("succeeded", 2, 1.0)
    api.session.close()
