"""Deferred sync runs in-process (the worker tests run the same code on a real worker):
approval safeguard, schedules, next-sync time, idempotence, broker outage."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from scimsync.models import AttributeState, JournalChange, SyncRun
from scimsync.sync import runs, services
from scimsync.sync.next_sync import next_sync
from users.models import User

pytestmark = pytest.mark.django_db(transaction=True)


def _users(connection, n, *, edited):
    users = []
    for i in range(n):
        user = services.user_provision(connection=connection, received={"user_name": f"u{i}", "title": "Analyst"},
                                       extras={}, actor=services.Actor("SCIM POST"))
        if i < edited:
            services.user_local_edit(user=user, attribute="title", value="Lead", actor=services.Actor("alice"))
        users.append(user)
    return users


def test_a_run_is_a_row_before_it_is_a_message_and_executes_idempotently(connection, settings):
    _users(connection, 3, edited=2)
    with transaction.atomic():
        run = runs.sync_run_start(connection=connection)
    run.refresh_from_db()
    assert run.state in ("queued", "succeeded")  # an eager or absent broker is both fine here
    runs.sync_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert (run.state, run.users_done, run.attributes_overwritten, run.lost_edits) == ("succeeded", 3, 2, 2)
    journal = JournalChange.objects.count()
    SyncRun.objects.filter(pk=run.pk).update(state="queued")  # a second delivery of the same message
    runs.sync_run_execute(run_id=run.pk)
    assert JournalChange.objects.count() == journal  # no duplicate lost-edit entries


def _world(connection) -> tuple:
    """Users, their states and the journal, as comparable text."""
    return tuple(sorted(map(repr, rows)) for rows in (
        User.objects.filter(connection=connection).values_list("pk", "title", "version"),
        AttributeState.objects.values_list("user_id", "attribute", "idp_value", "at_risk", "local_edit_at"),
        JournalChange.objects.values_list("entry__user_id", "attribute", "old_value", "new_value", "lost_edit"),
    ))


def test_running_a_run_again_from_the_start_gives_the_same_state_and_journal(connection):
    """DESIGN.md, "Deferred syncs": running a run twice gives the same result, even with no
    checkpoint to skip what was done (a run replayed from scratch): the sync itself is idempotent."""
    _users(connection, 4, edited=3)
    run = runs.sync_run_start(connection=connection)
    runs.sync_run_execute(run_id=run.pk)
    after_first = _world(connection)
    assert JournalChange.objects.filter(lost_edit=True).count() == 3

    SyncRun.objects.filter(pk=run.pk).update(state="queued", checkpoint=0, users_done=0,
                                             attributes_overwritten=0, lost_edits=0)
    runs.sync_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert (run.state, run.users_done, run.attributes_overwritten, run.lost_edits) == ("succeeded", 4, 0, 0)
    assert _world(connection) == after_first


def test_a_run_over_too_many_users_is_held_with_a_dry_run_until_approved(connection, alice, settings):
    settings.SCIMSYNC = {**settings.SCIMSYNC, "APPROVAL_SHARE": 0.5, "APPROVAL_MIN_USERS": 2}
    _users(connection, 4, edited=3)
    with transaction.atomic():
        run = runs.sync_run_start(connection=connection, requested_by=alice)
    assert run.state == "held" and run.users_at_risk == 3
    preview = list(runs.sync_run_preview(run=run))
    assert sorted(s.user.user_name for s in preview) == ["u0", "u1", "u2"]
    runs.sync_run_execute(run_id=run.pk)  # a stray message must not run a held run
    run.refresh_from_db()
    assert run.state == "held" and run.users_done == 0
    assert runs.sync_run_approve(run=run, approved_by=alice)
    runs.sync_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert (run.state, run.lost_edits, run.approved_by) == ("succeeded", 3, alice)


def test_schedule_starts_one_run_when_due_and_moves_next_sync(connection):
    connection.sync_schedule = timedelta(hours=1)
    connection.save()
    now = timezone.now()
    assert len(runs.start_due_scheduled_syncs(now=now)) == 1
    assert runs.start_due_scheduled_syncs(now=now + timedelta(minutes=5)) == []  # not due again yet
    connection.refresh_from_db()
    upcoming = next_sync(connection)
    assert upcoming.at == now + timedelta(hours=1) and not upcoming.expected
    assert len(runs.start_due_scheduled_syncs(now=now + timedelta(hours=1))) == 1
    assert SyncRun.objects.filter(reason="schedule").count() == 2


def test_next_sync_is_the_earlier_of_schedule_and_expected_push(connection):
    """DESIGN.md "Next sync": earliest of the next scheduled sync and last push + cadence."""
    assert next_sync(connection) is None
    pushed = timezone.now()
    connection.last_push_at = pushed
    connection.sync_cadence = timedelta(minutes=40)
    connection.save()
    assert next_sync(connection).at == pushed + timedelta(minutes=40) and next_sync(connection).expected
    connection.sync_schedule = timedelta(minutes=10)
    connection.last_scheduled_sync_at = pushed
    connection.save()
    assert next_sync(connection).at == pushed + timedelta(minutes=10) and not next_sync(connection).expected


def test_broker_outage_leaves_runs_queued_and_the_sweep_sends_them(connection, monkeypatch):
    from scimsync import tasks

    def broker_down(*args, **kwargs):
        raise ConnectionRefusedError("broker unreachable")

    monkeypatch.setattr(tasks.execute_sync_run, "apply_async", broker_down)
    _users(connection, 1, edited=1)
    with transaction.atomic():
        run = runs.sync_run_start(connection=connection)
    run.refresh_from_db()
    assert run.state == "queued"
    sent = []
    monkeypatch.setattr(tasks.execute_sync_run, "apply_async", lambda args, **kw: sent.append(args))
    SyncRun.objects.filter(pk=run.pk).update(queued_at=timezone.now() - timedelta(minutes=5))
    assert runs.sync_runs_requeue_stale() == 1 and sent == [[run.pk]]
    assert runs.sync_runs_requeue_stale() == 0  # just re-sent: not stale again at once


def test_a_second_delivery_does_not_run_a_run_another_worker_holds(connection):
    """Only a RUNNING run whose heartbeat expired may be taken over (a dead worker's)."""
    _users(connection, 1, edited=1)
    run = SyncRun.objects.create(connection=connection, users_total=1)
    assert runs._claim(run.pk)
    assert not runs._claim(run.pk)  # the first worker is alive: its heartbeat is fresh
    SyncRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - runs.lease() - timedelta(seconds=1))
    assert runs._claim(run.pk)  # the first worker died: the run is resumed


def test_custom_attributes_get_mappings_appear_in_schemas_and_sync(connection):
    """DESIGN.md catalogue: custom:NAME under the product's extension; generic maps it."""
    from mappings.models import AttributeMapping
    from mappings.services import custom_attribute_create
    from scimsync.scim.discovery import all_schemas

    custom_attribute_create(name="badgeNumber")
    assert AttributeMapping.objects.get(connection=connection, attribute="custom:badgeNumber").state == "mapped"
    ext = next(s for s in all_schemas() if s["id"].endswith("scimsync:2.0:User"))
    assert [a["name"] for a in ext["attributes"]] == ["badgeNumber"]
    user = services.user_provision(connection=connection, received={"user_name": "kim", "custom:badgeNumber": "B-7"},
                                   extras={}, actor=services.Actor("SCIM POST"))
    assert user.custom_attributes == {"badgeNumber": "B-7"}
    services.user_local_edit(user=user, attribute="custom:badgeNumber", value="B-8", actor=services.Actor("alice"))
    services.user_sync(user=user, actor=services.Actor("sync"))
    user.refresh_from_db()
    assert user.custom_attributes == {"badgeNumber": "B-7"}


def _next_sync_cell(client, connection) -> str:
    """The "Next sync" column of the connection list in the admin."""
    import re

    page = client.get("/admin/mappings/connection/").content.decode()
    row = re.search(rf'<tr[^>]*>(?:(?!</tr>).)*?>{re.escape(connection.name)}<(?:(?!</tr>).)*</tr>', page, re.S)
    assert row, page
    cell = re.search(r'<td class="field-next_sync_column">(.*?)</td>', row.group(0), re.S)
    return cell.group(1).strip()


def _shown(at) -> str:
    return timezone.localtime(at).strftime("%Y-%m-%d %H:%M %Z")


def test_a_schedule_produces_runs_and_moves_the_next_sync_shown_in_the_admin(connection, alice):
    """Issue 4: "a connection's schedule produces runs and moves the next-sync time shown in
    the admin"; DESIGN.md "Next sync" (scheduled, not marked expected)."""
    from django.test import Client

    from scimsync import tasks

    _users(connection, 2, edited=1)
    client = Client()
    client.force_login(alice)
    connection.sync_schedule = timedelta(hours=6)
    connection.last_push_at = None
    connection.save()
    before = timezone.now()
    # Never run yet: due at beat's next tick, not six hours from now.
    assert _next_sync_cell(client, connection) in {f"{_shown(before)} (scheduled)",
                                                   f"{_shown(before + timedelta(minutes=1))} (scheduled)"}

    assert tasks.start_due_scheduled_syncs() == 1  # beat's task, run as beat runs it
    run = SyncRun.objects.get(connection=connection)
    assert (run.reason, run.users_total, run.users_at_risk) == ("schedule", 2, 1)
    connection.refresh_from_db()
    assert connection.last_scheduled_sync_at >= before
    moved = f"{_shown(connection.last_scheduled_sync_at + timedelta(hours=6))} (scheduled)"
    assert _next_sync_cell(client, connection) == moved
    assert "Schedule" in client.get("/admin/scimsync/syncrun/").content.decode()

    assert tasks.start_due_scheduled_syncs() == 0  # not due again for six hours
    assert SyncRun.objects.filter(connection=connection).count() == 1
    assert _next_sync_cell(client, connection) == moved

    # An IdP push expected earlier than the schedule wins, marked as an estimate.
    Connection = type(connection)
    Connection.objects.filter(pk=connection.pk).update(last_push_at=timezone.now(), sync_cadence=timedelta(minutes=40))
    connection.refresh_from_db()
    assert _next_sync_cell(client, connection) == f"{_shown(connection.last_push_at + timedelta(minutes=40))} (expected)"


def test_the_sweep_resumes_abandoned_runs_and_tries_the_broker_once_during_an_outage(connection, monkeypatch):
    """DESIGN.md "Deferred syncs": queued runs are re-dispatched when the broker is back; a run
    whose worker died (heartbeat older than the lease) is queued again, to resume at its checkpoint."""
    from scimsync import tasks

    long_ago = timezone.now() - timedelta(hours=2)
    waiting = [SyncRun.objects.create(connection=connection, queued_at=long_ago) for _ in range(3)]
    abandoned = SyncRun.objects.create(connection=connection, state="running", checkpoint=7,
                                       started_at=long_ago, heartbeat_at=long_ago)
    alive = SyncRun.objects.create(connection=connection, state="running", started_at=long_ago,
                                   heartbeat_at=timezone.now())
    attempts = []

    def broker_down(args, **kwargs):
        attempts.append(args)
        raise ConnectionRefusedError("broker unreachable")

    monkeypatch.setattr(tasks.execute_sync_run, "apply_async", broker_down)
    assert runs.sync_runs_requeue_stale() == 0
    assert len(attempts) == 1  # one connect timeout per sweep, not one per waiting run
    abandoned.refresh_from_db()
    assert (abandoned.state, abandoned.checkpoint) == ("queued", 7)

    sent = []
    monkeypatch.setattr(tasks.execute_sync_run, "apply_async", lambda args, **kw: sent.append(args[0]))
    later = timezone.now() + runs.REQUEUE_AFTER + timedelta(seconds=1)
    assert runs.sync_runs_requeue_stale(now=later) == 4
    assert sorted(sent) == sorted([r.pk for r in waiting] + [abandoned.pk])
    alive.refresh_from_db()
    assert alive.state == "running"  # its worker is alive: not re-sent


# --- flag recompute after a mapping change on a connection too large for the request ---


@pytest.fixture
def recompute_in_runs(settings):
    """Connections of more than 2 users move their flags in a run (DESIGN.md, "Deferred
    syncs": "recomputing at-risk flags after a mapping change, for every user of the connection")."""
    settings.SCIMSYNC = {**settings.SCIMSYNC, "INLINE_RECOMPUTE_MAX_USERS": 2}


def _flags(connection) -> dict[str, bool]:
    return dict(AttributeState.objects.filter(user__connection=connection, attribute="title")
                .values_list("user__user_name", "at_risk"))


def _execute_again(run: SyncRun) -> None:
    """The run replayed from the start, as if its checkpoint had been lost."""
    SyncRun.objects.filter(pk=run.pk).update(state="queued", checkpoint=0, users_done=0,
                                             flags_raised=0, flags_cleared=0)
    runs.sync_run_execute(run_id=run.pk)


def test_a_mapping_change_on_a_large_connection_moves_its_flags_in_a_run(connection, recompute_in_runs, alice):
    from mappings.models import MappingChange

    _users(connection, 4, edited=3)
    assert sum(_flags(connection).values()) == 3
    values_before, journal_before = _world(connection)[0], JournalChange.objects.count()

    impact = services.mapping_update(connection=connection, attribute="title", state="unmapped",
                                     actor=services.Actor.person(alice))
    run = impact.sync_run
    assert run is not None and run.recomputes_flags and run.reason == SyncRun.Reason.MAPPING_CHANGE
    assert (impact.now_at_risk, impact.no_longer_at_risk, run.users_total) == (0, 0, 4)
    assert run.requested_by == alice
    change = MappingChange.objects.get(sync_run=run)

    runs.sync_run_execute(run_id=run.pk)  # no-op if an eager broker ran it on commit already
    run.refresh_from_db()
    assert (run.state, run.users_done, run.flags_raised, run.flags_cleared) == ("succeeded", 4, 0, 3)
    assert not any(_flags(connection).values())
    change.refresh_from_db()
    assert (change.users_now_at_risk, change.users_no_longer_at_risk) == (0, 3)
    # It overwrites nothing and journals nothing: the local values stay, only their flags moved.
    assert _world(connection)[0] == values_before and JournalChange.objects.count() == journal_before
    assert run.attributes_overwritten == run.lost_edits == 0

    mapped = services.mapping_update(connection=connection, attribute="title", state="mapped",
                                     actor=services.Actor.person(alice)).sync_run
    runs.sync_run_execute(run_id=mapped.pk)
    mapped.refresh_from_db()
    assert (mapped.flags_raised, mapped.flags_cleared) == (3, 0)
    assert sum(_flags(connection).values()) == 3

    flags = _flags(connection)
    _execute_again(mapped)  # idempotent: replayed from the start, the same end state
    mapped.refresh_from_db()
    assert (mapped.state, _flags(connection)) == ("succeeded", flags)
    assert mapped.flags_raised == 0  # nothing was left to move


def test_a_small_connection_still_moves_its_flags_before_the_answer(connection, alice):
    """DESIGN.md: "Mapping an attribute makes every user whose local value differs from the
    IdP value at risk at once (before any push)": no run below the threshold."""
    _users(connection, 3, edited=2)
    impact = services.mapping_update(connection=connection, attribute="title", state="unmapped",
                                     actor=services.Actor.person(alice))
    assert impact.sync_run is None and impact.no_longer_at_risk == 2
    assert not any(_flags(connection).values())
    assert not SyncRun.objects.exists()


def test_a_failed_recompute_is_retried_as_a_recompute_and_keeps_its_mapping_change(
    connection, recompute_in_runs, alice
):
    from mappings.models import MappingChange

    _users(connection, 3, edited=3)
    run = services.mapping_update(connection=connection, attribute="title", state="unmapped",
                                  actor=services.Actor.person(alice)).sync_run
    SyncRun.objects.filter(pk=run.pk).update(state="failed", error="OperationalError: gone")
    run.refresh_from_db()
    journal_before = JournalChange.objects.count()

    retry = runs.sync_run_retry(run=run, requested_by=alice)
    runs.sync_run_execute(run_id=retry.pk)
    retry.refresh_from_db()
    assert (retry.attribute, retry.reason, retry.state, retry.flags_cleared) == ("title", "retry", "succeeded", 3)
    assert JournalChange.objects.count() == journal_before  # a recompute, not a sync: nothing overwritten
    assert MappingChange.objects.get(attribute="title").sync_run_id == retry.pk
    assert MappingChange.objects.get(attribute="title").users_no_longer_at_risk == 3


def test_a_user_the_database_refuses_is_skipped_and_named_and_the_others_are_synced(connection, settings):
    """Found by a newcomer and a break-it helper: one user whose IdP userName another user held
    (a duplicate the IdP created after an older version let an admin rename the first) failed
    every sync of the connection at the same batch. DESIGN.md, "Deferred syncs": the run records
    its errors; the rest of the connection must not wait for that one user."""
    settings.SCIMSYNC = {**settings.SCIMSYNC, "APPROVAL_MIN_USERS": 1000}
    u0, u1, u2 = _users(connection, 3, edited=3)
    state = AttributeState.objects.get(user=u1, attribute="user_name")
    AttributeState.objects.filter(pk=state.pk).update(at_risk=True, local_edit_at=timezone.now(),
                                                      local_edit_by_label="alice")
    User.objects.filter(pk=u1.pk).update(user_name="u1.local", user_name_key="u1.local")
    services.user_provision(connection=connection, received={"user_name": "u1"}, extras={},
                            actor=services.Actor("SCIM POST"))  # the IdP's duplicate
    run = runs.sync_run_start(connection=connection)
    runs.sync_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.state == "succeeded"
    assert run.users_done == run.users_total - 1
    assert run.error.startswith("Not synced: u1.local (user ")
    assert [User.objects.get(pk=u.pk).title for u in (u0, u1, u2)] == ["Analyst", "Lead", "Analyst"]
    assert run.lost_edits == 2  # u0's and u2's titles; u1 kept as it was, its edit still flagged
