"""One switch, `DQ_EXECUTOR`, picks how a run's steps execute; read once, when the code location
loads (`dq_assets.definitions`).

- `in_process` (default): every step of a run in the run's own process, one after another. The
  only choice for the local DuckDB deployment: a DuckDB file has one writer at a time.
- `multiprocess`: each step in a subprocess of the run worker, on the same machine.
- `k8s`: each step in a Kubernetes Job of its own (dagster-k8s's `k8s_job_executor`; install the
  `k8s` extra). Its settings (namespace, resources per step, concurrency) are run config:
  deploy/k8s/run_config.yaml.
- `celery`: each step a Celery task, executed by `dagster-celery worker` processes on any machine
  that reaches the broker (dagster-celery's `celery_executor`; install the `celery` extra). The
  broker, results backend and queue come from the environment (`DQ_CELERY_BROKER_URL`,
  `DQ_CELERY_BACKEND`, `DQ_CELERY_QUEUE`), read by the run when it starts and by the workers
  (`-A dq_assets.celery_app`); a run may pick another queue with run config
  (`execution: {config: {queue: NAME}}`). A step whose worker is lost fails the run
  (`StepWorkerLost`, see dq_assets.celery_app). deploy/README.md: "Celery: steps over many
  machines".

Anything but `in_process` needs `DQ_DEPLOYMENT=aws`, where every piece of data state lives in S3
and PostgreSQL and steps may run anywhere; on the local deployment it is refused at load time.
"""

from __future__ import annotations

import os

import dagster as dg

EXECUTOR_ENV = "DQ_EXECUTOR"
EXECUTORS = ("in_process", "multiprocess", "k8s", "celery")
DISTRIBUTED_DEPLOYMENTS = ("aws",)

# Celery: the same three settings for the run (here) and its workers (dq_assets.celery_app).
CELERY_BROKER_ENV = "DQ_CELERY_BROKER_URL"
CELERY_BACKEND_ENV = "DQ_CELERY_BACKEND"
CELERY_QUEUE_ENV = "DQ_CELERY_QUEUE"
CELERY_DEFAULT_BROKER = "pyamqp://guest@localhost//"
# results travel back over the broker itself (RabbitMQ reply queues): nothing else to share
CELERY_DEFAULT_BACKEND = "rpc://"
CELERY_DEFAULT_QUEUE = "dagster"
# With rpc:// each run's process receives its steps' results on a reply queue of its own, which
# it polls (basic.get) and never consumes from, so RabbitMQ's auto-delete never removes it: it is
# declared to expire after this many seconds without use (Celery's result_expires, RabbitMQ's
# x-expires; Celery's default, a day, left one empty queue per run for a day). The run polls it
# every second and declares it again before each task it sends, so it cannot expire under a run.
CELERY_RESULT_EXPIRES_ENV = "DQ_CELERY_RESULT_EXPIRES"
CELERY_DEFAULT_RESULT_EXPIRES = 600


class StepWorkerLost(Exception):
    """A step's Celery task came back to the broker because the worker executing it was lost
    (raised by the worker that received it next, dq_assets.celery_app.StepTask; defined here so
    that the run's process rebuilds it by name)."""


def celery_settings() -> dict[str, str]:
    """broker, backend and queue from the environment, else the defaults. The broker URL may
    hold a password: it is passed on, never logged."""
    return {
        "broker": os.environ.get(CELERY_BROKER_ENV) or CELERY_DEFAULT_BROKER,
        "backend": os.environ.get(CELERY_BACKEND_ENV) or CELERY_DEFAULT_BACKEND,
        "queue": os.environ.get(CELERY_QUEUE_ENV) or CELERY_DEFAULT_QUEUE,
    }


def celery_result_expires() -> int:
    """Seconds an unused reply queue of a run lives (`DQ_CELERY_RESULT_EXPIRES`, default 600)."""
    value = os.environ.get(CELERY_RESULT_EXPIRES_ENV) or str(CELERY_DEFAULT_RESULT_EXPIRES)
    try:
        seconds = int(value)
    except ValueError:
        seconds = 0
    if seconds < 1:
        raise ValueError(f"{CELERY_RESULT_EXPIRES_ENV}={value!r}: expected a whole number of seconds, at least 1")
    return seconds


class _FailedTaskAsStepFailure:
    """A step's Celery result (celery.AsyncResult) whose task failed (raised, rather than
    returning the step's events: the step's worker was lost, `StepWorkerLost`, or its pool
    process died, Celery's WorkerLostError) read as a STEP_FAILURE event of the step.

    dagster-celery's loop keeps such an error aside and stops submitting steps, but keeps waiting
    for the steps it no longer submits: the run never ends (seen: a run still STARTED 90 s after
    its lost worker's tasks had been refused, with nothing left running). A step failure instead is the failure of any step: the
    steps downstream are skipped, the others finish, and the run fails naming the step."""

    def __init__(self, result, plan_context, step):
        self.result, self.plan_context, self.step = result, plan_context, step

    def ready(self) -> bool:
        return self.result.ready()

    def revoke(self, *args, **kwargs):
        return self.result.revoke(*args, **kwargs)

    def get(self, *args, **kwargs):
        import sys

        from celery.exceptions import TaskRevokedError

        from dq_assets.dagster_private import step_failure_event

        try:
            return self.result.get(*args, **kwargs)
        except TaskRevokedError:  # the run was stopped: dagster-celery reports it
            raise
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [""])[0]
            return [step_failure_event(
                self.plan_context, self.step, sys.exc_info(),
                f'Execution of step "{self.step.key}" failed: its Celery task failed with '
                f"{type(exc).__name__}: {first}")]


def _celery_executor() -> dg.ExecutorDefinition:
    # the `celery` extra
    from dagster_celery.core_execution_loop import core_celery_execution_loop
    from dagster_celery.executor import CELERY_CONFIG, CeleryExecutor, _submit_task

    from dq_assets.dagster_private import RetryMode

    def submit(app, plan_context, step, queue, priority, known_state):
        return _FailedTaskAsStepFailure(
            _submit_task(app, plan_context, step, queue, priority, known_state), plan_context, step)

    class Executor(CeleryExecutor):
        """dagster-celery's executor, a failed task read as its step's failure"""

        def execute(self, plan_context, execution_plan):
            return core_celery_execution_loop(plan_context, execution_plan, step_execution_fn=submit)

    @dg.executor(name="celery", config_schema=CELERY_CONFIG,
                 requirements=dg.multiple_process_executor_requirements())
    def celery_executor(init_context):
        # as dagster_celery.celery_executor
        config = init_context.executor_config
        return Executor(broker=config.get("broker"), backend=config.get("backend"),
                        config_source=config.get("config_source"), include=config.get("include"),
                        retries=RetryMode.from_config(config["retries"]))

    def config(run: dict) -> dict:
        # called when a run starts: the environment of the run's process, not of the loader
        settings = celery_settings()
        return {
            "broker": settings["broker"],
            "backend": settings["backend"],
            # a step goes to the executor's default queue (unless a step tag says otherwise)
            "config_source": {"task_default_queue": run.get("queue") or settings["queue"],
                              "result_expires": celery_result_expires()},
        }

    return celery_executor.configured(
        config,
        name="celery",
        config_schema={"queue": dg.Field(
            str, is_required=False,
            description=f"the Celery queue of this run's steps (default: ${CELERY_QUEUE_ENV}, else "
                        f"{CELERY_DEFAULT_QUEUE!r}); workers listen with `-q NAME`")},
    )


def executor_name(executor: str | None = None) -> str:
    """The executor asked for (default: DQ_EXECUTOR, else in_process), checked."""
    name = (executor or os.environ.get(EXECUTOR_ENV) or "in_process").strip().lower().replace("-", "_")
    if name not in EXECUTORS:
        raise ValueError(f"{EXECUTOR_ENV}={name!r}: expected one of {', '.join(EXECUTORS)}")
    return name


def build_executor(deployment: str, executor: str | None = None) -> dg.ExecutorDefinition:
    """The executor of the code location for `deployment` (local | aws)."""
    name = executor_name(executor)
    if name == "in_process":
        return dg.in_process_executor
    if deployment not in DISTRIBUTED_DEPLOYMENTS:
        raise ValueError(
            f"{EXECUTOR_ENV}={name} needs DQ_DEPLOYMENT=aws: the {deployment} deployment keeps its "
            "data in one DuckDB file with one writer, so its runs execute in process")
    if name == "multiprocess":
        return dg.multiprocess_executor
    if name == "celery":
        return _celery_executor()
    from dagster_k8s import k8s_job_executor  # the `k8s` extra: only images that run on Kubernetes

    return k8s_job_executor
