"""The Celery app of the workers that execute the steps of `DQ_EXECUTOR=celery` runs:

    dagster-celery worker start -A dq_assets.celery_app -q "$DQ_CELERY_QUEUE"

dagster-celery's own app (`dagster_celery.app`, with its `execute_plan` task), with the broker
and results backend the runs use (dq_assets.executors.celery_settings: `DQ_CELERY_BROKER_URL`,
`DQ_CELERY_BACKEND`), taken from the environment rather than a `-y` file, so that a broker
password is neither on disk nor on a command line. Without `-q` a worker listens on the queue
`dagster`, the runs' default."""

from __future__ import annotations

from dagster_celery.app import app

from dq_assets.executors import celery_settings

__all__ = ["app"]

_settings = celery_settings()
app.conf.update(broker_url=_settings["broker"], result_backend=_settings["backend"])
