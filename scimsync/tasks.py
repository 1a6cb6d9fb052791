"""Celery tasks: thin wrappers that take ids and call one service."""

from celery import shared_task

from scimsync.sync import runs


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def execute_sync_run(run_id: int) -> None:
    runs.sync_run_execute(run_id=run_id)


@shared_task(ignore_result=True)
def requeue_stale_sync_runs() -> int:
    return runs.sync_runs_requeue_stale()


@shared_task(ignore_result=True)
def start_due_scheduled_syncs() -> int:
    return len(runs.start_due_scheduled_syncs())
