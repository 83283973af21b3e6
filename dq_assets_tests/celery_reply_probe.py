"""Imported by test_celery.py's workers (`dagster-celery worker start -i ...`): appends the
reply queue of each task a worker executes (the `reply_to` of the message: with rpc://, the
queue of the run's process that waits for the result) to the file $DQ_TEST_REPLY_QUEUES, so
that the test can look for that queue on the broker after the run."""

from __future__ import annotations

import os

from celery.signals import task_prerun


@task_prerun.connect
def _record_reply_queue(task=None, **_):
    path = os.environ.get("DQ_TEST_REPLY_QUEUES")
    reply_to = getattr(task.request, "reply_to", None) if task else None
    if path and reply_to:
        with open(path, "a") as out:
            out.write(reply_to + "\n")
