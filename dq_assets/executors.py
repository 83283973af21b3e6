"""One switch, `DQ_EXECUTOR`, picks how a run's steps execute; read once, when the code location
loads (`dq_assets.definitions`).

- `in_process` (default): every step of a run in the run's own process, one after another. The
  only choice for the local DuckDB deployment: a DuckDB file has one writer at a time.
- `multiprocess`: each step in a subprocess of the run worker, on the same machine.
- `k8s`: each step in a Kubernetes Job of its own (dagster-k8s's `k8s_job_executor`; install the
  `k8s` extra). Its settings (namespace, resources per step, concurrency) are run config:
  deploy/k8s/run_config.yaml.

Anything but `in_process` needs `DQ_DEPLOYMENT=aws`, where every piece of data state lives in S3
and PostgreSQL and steps may run anywhere; on the local deployment it is refused at load time.
"""

from __future__ import annotations

import os

import dagster as dg

EXECUTOR_ENV = "DQ_EXECUTOR"
EXECUTORS = ("in_process", "multiprocess", "k8s")
DISTRIBUTED_DEPLOYMENTS = ("aws",)


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
    from dagster_k8s import k8s_job_executor  # the `k8s` extra: only images that run on Kubernetes

    return k8s_job_executor
