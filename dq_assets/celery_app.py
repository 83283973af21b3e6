"""The Celery app of the workers that execute the steps of `DQ_EXECUTOR=celery` runs:

    dagster-celery worker start -A dq_assets.celery_app -q "$DQ_CELERY_QUEUE"

dagster-celery's app (`dagster_celery.make_app`, with its `execute_plan` task), with the broker
and results backend the runs use (dq_assets.executors.celery_settings: `DQ_CELERY_BROKER_URL`,
`DQ_CELERY_BACKEND`), taken from the environment rather than a `-y` file, so that a broker
password is neither on disk nor on a command line. Without `-q` a worker listens on the queue
`dagster`, the runs' default.

A worker lost in the middle of a step (killed with its pool, its machine gone) must fail the
run, not leave it waiting: dagster-celery's own task is acknowledged when a worker receives it,
so when the whole worker dies no result is ever sent and the run waits for it forever (seen:
a run still STARTED minutes after its worker was SIGKILLed). Here the step's task
(`StepTask`) is acknowledged only when the step ends (`acks_late`): the broker gives the task
of a lost worker to another worker, marked redelivered, and that worker does not execute the
step a second time but fails its task with `StepWorkerLost`, which names the step; the run
then fails with that message. (A pool process killed under a surviving worker fails the task
with Celery's own WorkerLostError, "Worker exited prematurely".) What the lost step wrote is
rolled back with its connection: each of its outputs is one transaction. A worker cut off from
the broker stops its running steps (`worker_cancel_long_running_tasks_on_connection_loss`):
the broker has given their tasks back, so they fail the same way.
"""

from __future__ import annotations

from celery import Task
from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_execute_job_task, create_resume_job_task, create_task

from dq_assets.executors import StepWorkerLost, celery_settings

__all__ = ["StepTask", "app"]


def _what(kwargs: dict) -> tuple[str, str]:
    """(the step keys, the run id) of an execute_plan task's arguments, as far as they unpack."""
    try:
        from dq_assets.dagster_private import step_keys_and_run

        steps, run_id = step_keys_and_run(kwargs["execute_step_args_packed"])
        return ", ".join(steps) or "?", run_id
    except Exception:  # the message is still worth sending without them
        return "?", "?"


class StepTask(Task):
    """dagster-celery's execute_plan task, acknowledged when the step ends, and never executed
    again once the worker that received it was lost."""

    acks_late = True

    def before_start(self, task_id, args, kwargs):
        # called by the worker inside the task's execution, with the delivered message's request:
        # what it raises fails the task like an error of the step would
        if (self.request.delivery_info or {}).get("redelivered"):
            steps, run_id = _what(kwargs)
            raise StepWorkerLost(
                f"step {steps} of run {run_id}: the Celery worker executing it was lost (killed, "
                "or cut off from the broker) before the step finished, and the broker handed its "
                "task to this worker; the step is not executed a second time. Its unfinished "
                "writes were rolled back: rerun the run's partitions.")


_settings = celery_settings()
app = make_app()
app.conf.update(
    broker_url=_settings["broker"], result_backend=_settings["backend"],
    worker_cancel_long_running_tasks_on_connection_loss=True,
)
execute_plan = create_task(app, base=StepTask)
execute_job = create_execute_job_task(app)
resume_job = create_resume_job_task(app)
