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
  (`execution: {config: {queue: NAME}}`). deploy/README.md: "Celery: steps over many machines".

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


def celery_settings() -> dict[str, str]:
    """broker, backend and queue from the environment, else the defaults. The broker URL may
    hold a password: it is passed on, never logged."""
    return {
        "broker": os.environ.get(CELERY_BROKER_ENV) or CELERY_DEFAULT_BROKER,
        "backend": os.environ.get(CELERY_BACKEND_ENV) or CELERY_DEFAULT_BACKEND,
        "queue": os.environ.get(CELERY_QUEUE_ENV) or CELERY_DEFAULT_QUEUE,
    }


def _celery_executor() -> dg.ExecutorDefinition:
    from dagster_celery import celery_executor  # the `celery` extra

    def config(run: dict) -> dict:
        # called when a run starts: the environment of the run's process, not of the loader
        settings = celery_settings()
        return {
            "broker": settings["broker"],
            "backend": settings["backend"],
            # a step goes to the executor's default queue (unless a step tag says otherwise)
            "config_source": {"task_default_queue": run.get("queue") or settings["queue"]},
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
