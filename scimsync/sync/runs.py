"""Deferred syncs: a sync run is a row first, then a Celery message.

The row is written before the task is queued, so a broker outage loses
nothing: a queued run whose message never left is re-queued by
`sync_runs_requeue_stale`. A worker claims a run with a conditional UPDATE and
checkpoints per batch, so a second delivery of the same message finds the run
claimed or resumes after the last finished batch; users_sync is idempotent.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import DataError, IntegrityError, InterfaceError, OperationalError, transaction
from django.db.models import F, Q, TextField, Value
from django.db.models.functions import Coalesce, Concat
from django.utils import timezone

from mappings.models import Connection, MappingChange
from scimsync.models import AttributeState, SyncRun
from scimsync.sync.services import Actor, users_recompute_flags, users_sync
from users import page_index
from users.models import User

logger = logging.getLogger(__name__)


def _run_users(connection_id: int, user_ids: list[int] | None):
    users = User.objects.filter(connection_id=connection_id)
    return users.filter(pk__in=user_ids) if user_ids else users


def _needs_approval(users_at_risk: int, connection_users: int) -> bool:
    knobs = settings.SCIMSYNC
    return (
        users_at_risk >= knobs["APPROVAL_MIN_USERS"]
        and users_at_risk > knobs["APPROVAL_SHARE"] * connection_users
    )


def sync_run_start(
    *, connection: Connection, user_ids: list[int] | None = None, reason: str = SyncRun.Reason.MANUAL,
    requested_by: User | None = None,
) -> SyncRun:
    """Record a run, then queue it once the transaction commits.

    A run that would overwrite local values of too many users is HELD for an
    admin's approval instead (settings.SCIMSYNC["APPROVAL_SHARE"]).
    """
    users = _run_users(connection.pk, user_ids)
    at_risk = users.filter(attribute_states__at_risk=True).distinct().count()
    held = _needs_approval(at_risk, page_index.user_count(connection.pk))
    run = SyncRun.objects.create(
        connection=connection, user_ids=sorted(user_ids or []), reason=reason,
        requested_by=requested_by, users_total=users.count(), users_at_risk=at_risk,
        state=SyncRun.State.HELD if held else SyncRun.State.QUEUED,
    )
    if not held:
        transaction.on_commit(lambda: sync_run_dispatch(run_id=run.pk))
    return run


def flags_recompute_start(
    *, connection: Connection, attribute: str, reason: str = SyncRun.Reason.MAPPING_CHANGE,
    requested_by: User | None = None,
) -> SyncRun:
    """Record a run that moves one attribute's at-risk flags for every user, then queue it.

    Never held for approval: it overwrites nothing, it only tells admins what
    the next sync will overwrite.
    """
    run = SyncRun.objects.create(
        connection=connection, attribute=attribute, reason=reason, requested_by=requested_by,
        users_total=page_index.user_count(connection.pk),
    )
    transaction.on_commit(lambda: sync_run_dispatch(run_id=run.pk))
    return run


def sync_run_preview(*, run: SyncRun, limit: int = 500):
    """The dry run of a held run: every at-risk attribute it would overwrite."""
    users = _run_users(run.connection_id, run.user_ids or None)
    return (
        AttributeState.objects.filter(user__in=users, at_risk=True)
        .select_related("user")
        .order_by("user__user_name", "attribute")[:limit]
    )


@transaction.atomic
def sync_run_approve(*, run: SyncRun, approved_by: User) -> bool:
    approved = SyncRun.objects.filter(pk=run.pk, state=SyncRun.State.HELD).update(
        state=SyncRun.State.QUEUED, approved_by=approved_by, queued_at=timezone.now()
    )
    if approved:
        transaction.on_commit(lambda: sync_run_dispatch(run_id=run.pk))
    return bool(approved)


def sync_run_dispatch(*, run_id: int) -> bool:
    """Send the run to the broker; on failure leave it queued for the sweep.

    Never raises and never waits long: it runs on commit of an admin's click.
    The broker's connect and socket timeouts (settings.py) bound the wait.
    """
    from scimsync.tasks import execute_sync_run

    try:
        execute_sync_run.apply_async(args=[run_id], retry=False)
    except Exception:  # the broker is down: the row waits, the sweep re-queues it
        logger.warning("could not queue sync run %s; it stays queued", run_id, exc_info=True)
        return False
    return True


def sync_runs_requeue_stale(*, now=None) -> int:
    """Re-send the runs whose message may have been lost (the beat's sweep).

    Two kinds: runs QUEUED for longer than REQUEUE_AFTER (the broker was down,
    or came back empty), and RUNNING runs whose worker renewed no heartbeat for
    longer than the lease: that worker died (SIGKILL, OOM, a lost host), and its
    acks_late message comes back only after Redis's visibility timeout (an hour),
    on the filesystem broker never. Those go back to QUEUED first, so a worker
    resumes them after their checkpoint, and a worker that was only slow finds
    the run no longer its own at its next checkpoint and stops.

    Safe to repeat, and a duplicate message is harmless: claiming is atomic.
    Stops at the first run the broker refuses, so a sweep during an outage
    costs one connect timeout, not one per waiting run.
    """
    now = now or timezone.now()
    abandoned = SyncRun.objects.filter(state=SyncRun.State.RUNNING, heartbeat_at__lt=now - lease())
    ids = set(abandoned.values_list("pk", flat=True))
    abandoned.filter(pk__in=ids).update(state=SyncRun.State.QUEUED, queued_at=now)
    stale = SyncRun.objects.filter(state=SyncRun.State.QUEUED, queued_at__lt=now - REQUEUE_AFTER)
    ids |= set(stale.values_list("pk", flat=True))
    sent = 0
    for run_id in sorted(ids):
        # Bumped first: a run just re-sent is not stale again until REQUEUE_AFTER has passed.
        SyncRun.objects.filter(pk=run_id, state=SyncRun.State.QUEUED).update(queued_at=now)
        if not sync_run_dispatch(run_id=run_id):
            break
        sent += 1
    return sent


# A queued run whose message has not been consumed after this long is sent again.
REQUEUE_AFTER = timedelta(minutes=2)


def lease() -> timedelta:
    """How long a RUNNING run's heartbeat stays valid (settings.SCIMSYNC["SYNC_LEASE_SECONDS"])."""
    return timedelta(seconds=settings.SCIMSYNC["SYNC_LEASE_SECONDS"])


def _claim(run_id: int) -> bool:
    """Exactly one worker proceeds: a QUEUED run, or a RUNNING one whose lease expired.

    A second delivery of the message while the first worker is alive finds the
    run RUNNING with a fresh heartbeat and returns without doing anything. (The
    sweep puts abandoned runs back to QUEUED; the expired-lease case covers a
    message redelivered by the broker before the sweep ran.)
    """
    now = timezone.now()
    claimable = Q(state=SyncRun.State.QUEUED) | Q(state=SyncRun.State.RUNNING, heartbeat_at__lt=now - lease())
    claimed = SyncRun.objects.filter(claimable, pk=run_id).update(
        state=SyncRun.State.RUNNING, started_at=Coalesce("started_at", now), heartbeat_at=now
    )
    return claimed == 1


class TransientRunError(Exception):
    """The database failed in a way worth retrying; the run was put back in the queue."""


# Lost connections, deadlocks, lock and serialization timeouts: another attempt may succeed.
TRANSIENT_ERRORS = (OperationalError, InterfaceError)


def sync_run_execute(*, run_id: int) -> None:
    """Sync every user of the run in batches, checkpointing after each batch.

    Each batch is one transaction that also advances the checkpoint, so a worker
    killed mid-batch leaves nothing of that batch behind, and whoever resumes the
    run starts after the last committed batch: counts and journal stay exact.
    Raises TransientRunError (after putting the run back to QUEUED) on errors
    worth retrying; any other error marks the run FAILED. A user whose data the
    database refuses is skipped, named in the run's `error`, and not counted done
    (_batch_or_each); the others are synced.
    """
    if not _claim(run_id):
        return
    run = SyncRun.objects.select_related("connection").get(pk=run_id)
    batch_size = settings.SCIMSYNC["SYNC_BATCH_SIZE"]
    do_batch = _recompute_batch(run) if run.recomputes_flags else _sync_batch(run)
    users = _run_users(run.connection_id, run.user_ids or None).order_by("pk")
    if run.checkpoint == 0:
        # Users came or went since the run was queued (an outage may have lasted hours):
        # the progress the admin sees counts the users this run will actually sync.
        run.users_total = users.count()
        _owned(run).update(users_total=run.users_total)
    try:
        while True:
            batch = list(users.filter(pk__gt=run.checkpoint).values_list("pk", flat=True)[:batch_size])
            if not batch:
                break
            with transaction.atomic():
                counts, skipped = _batch_or_each(do_batch, batch)
                extra = {"error": _appended(_skipped_text(skipped))} if skipped else {}
                # Conditional on the checkpoint this worker read: if another worker took
                # the run over meanwhile, this batch rolls back and this worker stops.
                advanced = _owned(run).update(
                    checkpoint=batch[-1], users_done=F("users_done") + len(batch) - len(skipped),
                    heartbeat_at=timezone.now(), **{name: F(name) + n for name, n in counts.items()}, **extra,
                )
                if not advanced:
                    transaction.set_rollback(True)
                    return
            run.checkpoint = batch[-1]
    except TRANSIENT_ERRORS as error:
        logger.warning("sync run %s: transient error, queued again: %s", run_id, error)
        _release(run)
        raise TransientRunError(f"{type(error).__name__}: {error}") from error
    except Exception as error:
        logger.exception("sync run %s failed", run_id)
        _owned(run).update(
            state=SyncRun.State.FAILED, error=f"{type(error).__name__}: {error}", finished_at=timezone.now()
        )
        return
    with transaction.atomic():
        if _owned(run).update(state=SyncRun.State.SUCCEEDED, finished_at=timezone.now()) and run.recomputes_flags:
            done = SyncRun.objects.get(pk=run.pk)
            MappingChange.objects.filter(sync_run=run).update(
                users_now_at_risk=done.flags_raised, users_no_longer_at_risk=done.flags_cleared)


# What one user's data can make the database refuse (a userName taken meanwhile, a value
# too long for its column): that user is skipped, not the whole run.
USER_DATA_ERRORS = (IntegrityError, DataError)


def _batch_or_each(do_batch, user_ids: list[int]) -> tuple[dict[str, int], list[tuple[int, str]]]:
    """do_batch(user_ids) in a savepoint; if the database refuses one user's data, the batch again
    one user at a time, skipping (and returning, with why) those it refuses.

    Without this, one user whose IdP userName another user holds (a duplicate the IdP
    created while the name was edited locally, which older versions allowed) failed every
    sync of its connection, at the same batch each time.
    """
    try:
        with transaction.atomic():
            return do_batch(user_ids), []
    except USER_DATA_ERRORS:
        pass
    counts: dict[str, int] = {}
    skipped: list[tuple[int, str]] = []
    for user_id in user_ids:
        try:
            with transaction.atomic():
                for name, n in do_batch([user_id]).items():
                    counts[name] = counts.get(name, 0) + n
        except USER_DATA_ERRORS as error:
            logger.warning("sync: user %s skipped: %s", user_id, error)
            skipped.append((user_id, str(error).splitlines()[0]))
    return counts, skipped


def _appended(text: str) -> Concat:
    """The run's error text with `text` added, in the UPDATE that checkpoints the batch."""
    return Concat("error", Value(text), output_field=TextField())


def _skipped_text(skipped: list[tuple[int, str]]) -> str:
    names = dict(User.objects.filter(pk__in=[pk for pk, _ in skipped]).values_list("pk", "user_name"))
    return "".join(f"Not synced: {names.get(pk, pk)} (user {pk}): {why}\n" for pk, why in skipped)


def _sync_batch(run: SyncRun):
    """A batch of a sync: users_sync, counted in overwritten attributes and lost edits."""
    actor = Actor(label=f"sync run {run.pk}", sync_run=run)

    def sync(user_ids: list[int]) -> dict[str, int]:
        outcome = users_sync(user_ids=user_ids, actor=actor)
        return {"attributes_overwritten": outcome.overwritten, "lost_edits": outcome.lost_edits}
    return sync


def _recompute_batch(run: SyncRun):
    """A batch of a flag recompute, counted in flags raised and cleared."""
    def recompute(user_ids: list[int]) -> dict[str, int]:
        impact = users_recompute_flags(connection_id=run.connection_id, user_ids=user_ids, attribute=run.attribute)
        return {"flags_raised": impact.now_at_risk, "flags_cleared": impact.no_longer_at_risk}
    return recompute


def _owned(run: SyncRun):
    """The run, if this worker still holds it: RUNNING at the checkpoint this worker wrote last."""
    return SyncRun.objects.filter(pk=run.pk, state=SyncRun.State.RUNNING, checkpoint=run.checkpoint)


def _release(run: SyncRun) -> None:
    """Hand a run back to the queue; if the database is gone too, the lease expires instead."""
    try:
        _owned(run).update(state=SyncRun.State.QUEUED, queued_at=timezone.now())
    except TRANSIENT_ERRORS:
        logger.warning("sync run %s: could not release it; the sweep resumes it after the lease", run.pk)


@transaction.atomic
def sync_run_retry(*, run: SyncRun, requested_by: User | None) -> SyncRun:
    """A failed run is retried as a new run of the same kind over the same users.

    The mapping change a failed recompute was for follows the retry, which
    fills in its counts when it finishes.
    """
    if run.recomputes_flags:
        retry = flags_recompute_start(connection=run.connection, attribute=run.attribute,
                                      reason=SyncRun.Reason.RETRY, requested_by=requested_by)
        MappingChange.objects.filter(sync_run=run).update(sync_run=retry)
        return retry
    return sync_run_start(
        connection=run.connection, user_ids=run.user_ids or None, reason=SyncRun.Reason.RETRY,
        requested_by=requested_by,
    )


def start_due_scheduled_syncs(*, now=None) -> list[SyncRun]:
    """Start a run for every connection whose schedule is due.

    The conditional UPDATE on last_scheduled_sync_at makes two beat processes
    (or a beat restarted mid-minute) start each scheduled run once.
    """
    now = now or timezone.now()
    started = []
    for connection in Connection.objects.filter(sync_schedule__isnull=False):
        due_since = now - connection.sync_schedule
        claimed = Connection.objects.filter(pk=connection.pk).filter(
            Q(last_scheduled_sync_at__isnull=True) | Q(last_scheduled_sync_at__lte=due_since)
        ).update(last_scheduled_sync_at=now)
        if claimed:
            with transaction.atomic():
                started.append(sync_run_start(connection=connection, reason=SyncRun.Reason.SCHEDULE))
    return started
