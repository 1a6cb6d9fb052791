"""Celery tasks: thin wrappers that take ids and call one service."""

from celery import shared_task

from scimsync import request_log
from scimsync.sync import runs


# acks_late + reject_on_worker_lost: a worker that dies mid-run does not ack its message.
# A transient database error puts the run back to QUEUED and is retried with backoff
# and jitter; after the last retry the queued run waits for the sweep. Every other
# error has already marked the run FAILED (an admin retries it).
@shared_task(
    acks_late=True, reject_on_worker_lost=True, ignore_result=True,
    autoretry_for=(runs.TransientRunError,), retry_backoff=5, retry_backoff_max=300, retry_jitter=True,
    max_retries=5,
)
def execute_sync_run(run_id: int) -> None:
    runs.sync_run_execute(run_id=run_id)


@shared_task(ignore_result=True)
def requeue_stale_sync_runs() -> int:
    return runs.sync_runs_requeue_stale()


@shared_task(ignore_result=True)
def start_due_scheduled_syncs() -> int:
    return len(runs.start_due_scheduled_syncs())


@shared_task(ignore_result=True)
def prune_request_log() -> int:
    return request_log.request_log_prune()
