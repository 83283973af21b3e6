"""The production launchers of deploy/ on paper, validated without a cluster: every snippet is
checked against the schema of the library that reads it, and each check fails on a planted
mistake (a misspelled key, a wrong type).

- deploy/ecs/dagster.yaml: Dagster's instance schema, then `EcsRunLauncher.config_type()` (and
  every other class the file names against its own); `run_task_kwargs` against botocore's model
  of ECS RunTask, which is where the launcher passes them.
- deploy/ecs/task-definition.json: botocore's model of ECS RegisterTaskDefinition.
- deploy/k8s/values.yaml: the parts the Helm chart renders into Dagster's dagster.yaml
  (postgresql, computeLogManager, runLauncher.config.k8sRunLauncher, dagsterDaemon.runCoordinator
  and runMonitoring, telemetry) are translated as the chart's instance template does and checked
  like an instance file (`K8sRunLauncher.config_type()`, `QueuedRunCoordinator`,
  `S3ComputeLogManager`, the postgres storage schema). The chart's own structure is not checked
  against the chart's values.schema.json, which is not published on PyPI.
- deploy/k8s/run_config.yaml: `dg.validate_run_config` on the code location's own asset job,
  loaded as values.yaml's environment loads it (DQ_DEPLOYMENT=aws, DQ_EXECUTOR=k8s), i.e. against
  `k8s_job_executor`'s config schema; per-step keys must be steps of that job.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import botocore.session
import dagster as dg
import pytest
import yaml
from botocore.validate import ParamValidator
from dagster_aws.ecs import EcsRunLauncher
from dagster_k8s import K8sRunLauncher, k8s_job_executor

from dq_assets import dagster_private as dp
from dq_assets.executors import EXECUTORS, build_executor
from dq_assets_tests.yaml_tree import leaves

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
ECS_YAML = DEPLOY / "ecs" / "dagster.yaml"
ECS_TASK = DEPLOY / "ecs" / "task-definition.json"
HELM_VALUES = DEPLOY / "k8s" / "values.yaml"
K8S_RUN_CONFIG = DEPLOY / "k8s" / "run_config.yaml"
README = DEPLOY / "README.md"
SECRETISH = re.compile(r"pass(word)?|secret|token|access_key|credential|api_key", re.IGNORECASE)


def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _instance_errors(config: dict, tmp_path: Path) -> list[str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return dp.instance_config_errors(str(home))


def _set(doc: dict, path: str, value) -> dict:
    """A copy of `doc` with the dotted `path` set (`-` deletes; `old>new` renames the last key)."""
    doc = copy.deepcopy(doc)
    *parents, last = path.split(".")
    node = doc
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if ">" in last:
        old, new = last.split(">")
        node[new] = node.pop(old)
    elif value == "-":
        del node[last]
    else:
        node[last] = value
    return doc


# ---------------------------------------------------------------- ECS: the instance file

def test_ecs_instance_validates_against_dagster_and_dagster_aws(tmp_path):
    config = _yaml(ECS_YAML)
    assert config["run_launcher"]["module"] == "dagster_aws.ecs"
    assert config["run_launcher"]["class"] == "EcsRunLauncher"
    assert dp.instance_config_errors(str(ECS_YAML.parent)) == []
    assert _instance_errors(config, tmp_path) == []
    # EcsRunLauncher can resume a run whose task died (the one-machine file keeps 0)
    assert config["run_monitoring"]["max_resume_run_attempts"] >= 1


def _permissive_fields(launcher_cls, key: str) -> set[str]:
    return set(launcher_cls.config_type()[key].config_type.fields)


def _run_task_errors(kwargs: dict) -> str:
    """Errors of the launcher's run_task_kwargs as boto3 would find them in ecs.run_task (the
    launcher adds the task definition itself)."""
    model = botocore.session.get_session().get_service_model("ecs")
    report = ParamValidator().validate({"taskDefinition": "dq-assets-run", **kwargs},
                                       model.operation_model("RunTask").input_shape)
    return report.generate_report() if report.has_errors() else ""


def _ecs_launcher_errors(config: dict, tmp_path: Path) -> list[str]:
    """Everything that is checked of the ECS instance file: the schemas, and the parts the
    schema leaves open (run_resources: only the fields it declares; run_task_kwargs: RunTask)."""
    errors = _instance_errors(config, tmp_path)
    launcher = config["run_launcher"]["config"]
    extra = set(launcher.get("run_resources", {})) - _permissive_fields(EcsRunLauncher, "run_resources")
    errors += [f"run_resources: {k} is not a field of EcsRunLauncher" for k in sorted(extra)]
    if report := _run_task_errors(launcher.get("run_task_kwargs", {})):
        errors.append(report)
    return errors


def test_ecs_launcher_open_parts_are_checked_too(tmp_path):
    assert _ecs_launcher_errors(_yaml(ECS_YAML), tmp_path) == []


ECS_MISTAKES = [
    ("run_launcher.config.include_sidecars>include_sidecar", None, "include_sidecar"),
    ("run_launcher.config.run_resources.cpu", 2048, "cpu"),                      # an int, not a string
    ("run_launcher.config.secrets", "DAGSTER_PG_PASSWORD", "secrets"),           # not a list
    ("run_launcher.config.run_resources.memory>memory_mb", None, "memory_mb"),   # open shape, known fields
    ("run_launcher.config.run_task_kwargs.cluster>clusterName", None, "clusterName"),  # RunTask
    ("run_launcher.config.run_task_kwargs.enableExecuteCommand", "no", "enableExecuteCommand"),
    ("run_monitoring.max_resume_run_attempts", "two", "max_resume_run_attempts"),
    ("run_launcher.class", "EcsRunLauncherr", None),
]


@pytest.mark.parametrize("path, value, named", ECS_MISTAKES, ids=[m[0] for m in ECS_MISTAKES])
def test_ecs_instance_mistakes_fail(tmp_path, path, value, named):
    broken = _set(_yaml(ECS_YAML), path, value)
    if named is None:  # a class that does not exist: the instance fails to load it
        with pytest.raises(AttributeError):
            _ecs_launcher_errors(broken, tmp_path)
        return
    errors = _ecs_launcher_errors(broken, tmp_path)
    assert errors and named in "\n".join(errors), errors


def test_ecs_instance_is_the_one_machine_instance_plus_the_launcher():
    """Storage, compute logs, run queue and monitoring are deploy/dagster.yaml's, verbatim."""
    one, ecs = _yaml(DEPLOY / "dagster.yaml"), _yaml(ECS_YAML)
    ecs.pop("run_launcher")
    ecs["run_monitoring"]["max_resume_run_attempts"] = one["run_monitoring"]["max_resume_run_attempts"]
    assert ecs == one


def test_ecs_secrets_come_from_secrets_manager():
    launcher = _yaml(ECS_YAML)["run_launcher"]["config"]
    assert launcher["secrets"] and all(
        s["valueFrom"].startswith("arn:aws:secretsmanager:") for s in launcher["secrets"])
    assert launcher["secrets_tag"] is None  # no tag-based discovery of other secrets
    assert launcher["include_sidecars"] is False
    for entry in launcher["env_vars"]:
        name = entry.partition("=")[0]
        assert not ("=" in entry and SECRETISH.search(name)), f"{entry}: a secret as a plain value"
    assert "DAGSTER_PG_PASSWORD" not in launcher["env_vars"]


# ---------------------------------------------------------------- ECS: the task definition

def _task_definition_errors(task: dict) -> str:
    model = botocore.session.get_session().get_service_model("ecs")
    report = ParamValidator().validate(task, model.operation_model("RegisterTaskDefinition").input_shape)
    return report.generate_report() if report.has_errors() else ""


def test_ecs_task_definition_validates_against_the_ecs_api_model():
    task = json.loads(ECS_TASK.read_text())
    assert _task_definition_errors(task) == ""
    launcher = _yaml(ECS_YAML)["run_launcher"]["config"]
    # the launcher's task definition and container are these
    assert task["family"] == launcher["task_definition"]
    (container,) = task["containerDefinitions"]
    assert container["name"] == launcher["container_name"]
    assert container["command"][:5] == ["dagster", "api", "grpc", "-m", "dq_assets"]
    env = {e["name"]: e["value"] for e in container["environment"]}
    assert env["DQ_DEPLOYMENT"] == "aws" and env["DQ_EXECUTOR"] == "in_process"
    # every variable the instance file reads is set, the password by ECS from Secrets Manager
    needed = {m for m in re.findall(r"env: (\w+)", ECS_YAML.read_text())}
    secrets = {s["name"] for s in container["secrets"]}
    assert needed - set(env) == {"DAGSTER_PG_PASSWORD"} <= secrets
    # (DQ_PG_SECRET_ID names a secret; the warehouse reads it at run time)
    assert not any(SECRETISH.search(n) and not n.endswith("_SECRET_ID") for n in env), sorted(env)


@pytest.mark.parametrize("path, value, named", [
    ("containerDefinitions>containerDefinitons", None, "containerDefinitons"),
    ("cpu", 2048, "cpu"),
    ("containerDefinitions.0.essential", "yes", "essential"),
    ("containerDefinitions.0.secrets.0.valueFrom>value", None, "value"),
], ids=["misspelled", "int-not-string", "bool", "secret-key"])
def test_ecs_task_definition_mistakes_fail(path, value, named):
    broken = _set(json.loads(ECS_TASK.read_text()), path, value)
    report = _task_definition_errors(broken)
    assert report and named in report, report


# ---------------------------------------------------------------- Kubernetes: the Helm values

def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _snake_keys(mapping: dict) -> dict:
    return {_snake(k): v for k, v in mapping.items()}


def _names(refs: list) -> list[str]:
    return [r["name"] if isinstance(r, dict) else r for r in refs]


# runLauncher.config.k8sRunLauncher keys the chart renders into K8sRunLauncher's config, and how
# (helm/dagster/templates/helpers/instance/_run-launcher.tpl); anything else is not a chart key.
_LAUNCHER_KEYS = {
    "jobNamespace": None, "loadInclusterConfig": None, "kubeconfigFile": None,
    "imagePullPolicy": None, "envVars": None, "labels": None, "resources": None,
    "volumeMounts": None, "volumes": None, "schedulerName": None, "securityContext": None,
    "failPodOnRunFailure": None, "envConfigMaps": _names, "envSecrets": _names,
    "runK8sConfig": _snake_keys,
}


def helm_instance(values: dict) -> dict:
    """The dagster.yaml the chart renders from `values` (its configmap-instance template), for
    the parts this project sets. A key the chart does not map is an error here."""
    pg = values["postgresql"]
    db = {"username": pg["postgresqlUsername"], "password": {"env": "DAGSTER_PG_PASSWORD"},
          "hostname": pg["postgresqlHost"], "db_name": pg["postgresqlDatabase"],
          "port": pg["service"]["port"], "params": pg.get("postgresqlParams", {})}
    if pg.get("postgresqlScheme"):
        db["scheme"] = pg["postgresqlScheme"]

    launcher_values = values["runLauncher"]
    assert launcher_values["type"] == "K8sRunLauncher", launcher_values["type"]
    launcher = {"instance_config_map": "dagster-instance", "dagster_home": "/opt/dagster/dagster_home",
                "postgres_password_secret": values["global"]["postgresqlSecretName"],
                "service_account_name": "dagster"}
    for key, value in launcher_values["config"]["k8sRunLauncher"].items():
        if key not in _LAUNCHER_KEYS:
            raise KeyError(f"runLauncher.config.k8sRunLauncher.{key} is not a key the chart maps")
        convert = _LAUNCHER_KEYS[key]
        launcher[_snake(key)] = convert(value) if convert else value

    daemon = values["dagsterDaemon"]
    coordinator = daemon["runCoordinator"]
    assert coordinator["type"] == "QueuedRunCoordinator"
    logs = values["computeLogManager"]
    assert logs["type"] == "S3ComputeLogManager"
    return {
        "storage": {"postgres": {"postgres_db": db}},
        "run_launcher": {"module": "dagster_k8s", "class": "K8sRunLauncher", "config": launcher},
        "run_coordinator": {"module": "dagster", "class": "QueuedRunCoordinator",
                            "config": _snake_keys(coordinator["config"]["queuedRunCoordinator"])},
        "compute_logs": {"module": "dagster_aws.s3.compute_log_manager", "class": "S3ComputeLogManager",
                         "config": _snake_keys(logs["config"]["s3ComputeLogManager"])},
        "run_monitoring": _snake_keys(daemon["runMonitoring"]),
        "telemetry": values["telemetry"],
    }


def test_helm_values_render_a_valid_instance(tmp_path):
    instance = helm_instance(_yaml(HELM_VALUES))
    assert _instance_errors(instance, tmp_path) == []
    # and the run launcher's part on its own, against the class the chart names
    assert dp.config_errors(K8sRunLauncher.config_type(), instance["run_launcher"]["config"]) == []
    assert instance["run_coordinator"]["config"]["max_concurrent_runs"] == 4


HELM_MISTAKES = [
    ("runLauncher.config.k8sRunLauncher.jobNamespace>jobNamespce", None, "jobNamespce"),
    ("runLauncher.config.k8sRunLauncher.loadInclusterConfig", "yes", "load_incluster_config"),
    ("runLauncher.config.k8sRunLauncher.runK8sConfig.containerConfig>containerConfg", None, "container_confg"),
    ("runLauncher.config.k8sRunLauncher.envVars", "DQ_DEPLOYMENT=aws", "env_vars"),
    ("dagsterDaemon.runCoordinator.config.queuedRunCoordinator.maxConcurrentRuns", "four", "max_concurrent_runs"),
    ("dagsterDaemon.runMonitoring.startTimeoutSeconds>startTimeoutSecs", None, "start_timeout_secs"),
    ("computeLogManager.config.s3ComputeLogManager.skipEmptyFiles", "yes", "skip_empty_files"),
    ("postgresql.service.port", "five", "port"),
]


@pytest.mark.parametrize("path, value, named", HELM_MISTAKES, ids=[m[0].rsplit(".", 1)[-1] for m in HELM_MISTAKES])
def test_helm_values_mistakes_fail(tmp_path, path, value, named):
    broken = _set(_yaml(HELM_VALUES), path, value)
    try:
        errors = _instance_errors(helm_instance(broken), tmp_path)
    except KeyError as error:  # a key the chart would not map (and would drop silently)
        errors = [str(error)]
    assert errors and named in "\n".join(errors), errors


def _deployment_env(values: dict) -> dict:
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    return {e["name"]: e["value"] for e in deployment["env"]}


def test_helm_values_run_this_code_location_without_literal_secrets():
    values = _yaml(HELM_VALUES)
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "dq_assets"]
    env = _deployment_env(values)
    assert env["DQ_DEPLOYMENT"] == "aws" and env["DQ_EXECUTOR"] == "k8s" and env["DQ_S3_BUCKET"]
    # PostgreSQL: the instance's password from the Secret the chart mounts, the warehouse's
    # login from a Secret as environment; no password in the values
    assert values["generatePostgresqlPasswordSecret"] is False
    assert values["global"]["postgresqlSecretName"]
    assert "postgresqlPassword" not in values["postgresql"]
    assert {"name": "dq-warehouse-postgres"} in deployment["envSecrets"]
    for path, value in leaves(values):
        # a secret-like key holds a switch or the name of a Secret, never a value
        named = path[-1] == "postgresqlSecretName" or "envSecrets" in path or isinstance(value, bool)
        assert named or not SECRETISH.search(path[-1]), ".".join(path)
        assert not (isinstance(value, str) and re.search(r"://[^/\s:@]+:[^@\s]+@", value)), ".".join(path)
    assert not any(SECRETISH.search(name) for name in env), sorted(env)


# ---------------------------------------------------------------- Kubernetes: the executor's run config

@dg.op
def _step():
    return 1


@dg.job(executor_def=k8s_job_executor)
def _k8s_job():
    _step()


def _run_config_errors(job, run_config) -> list[str]:
    try:
        dg.validate_run_config(job, run_config)
    except dg.DagsterInvalidConfigError as error:
        return [e.message for e in error.errors] or [str(error)]
    return []


def test_k8s_run_config_validates_against_the_executor_schema():
    run_config = _yaml(K8S_RUN_CONFIG)
    run_config["execution"]["config"]["per_step_k8s_config"] = {}  # steps of the real job, below
    assert _run_config_errors(_k8s_job, run_config) == []
    step = run_config["execution"]["config"]["step_k8s_config"]
    assert step["container_config"]["resources"]["requests"] and step["container_config"]["resources"]["limits"]


@pytest.mark.parametrize("path, value, named", [
    ("execution.config.max_concurrent>max_concurent", None, "max_concurent"),
    ("execution.config.max_concurrent", "eight", "max_concurrent"),
    ("execution.config.step_k8s_config.container_config>container_confg", None, "container_confg"),
    ("execution.config.env_secrets", "dq-warehouse-postgres", "env_secrets"),
    ("execution.config.enable_owner_references", "yes", "enable_owner_references"),
], ids=["misspelled", "int", "container", "list", "bool"])
def test_k8s_run_config_mistakes_fail(path, value, named):
    broken = _set(_yaml(K8S_RUN_CONFIG), path, value)
    broken["execution"]["config"]["per_step_k8s_config"] = {}
    errors = _run_config_errors(_k8s_job, broken)
    assert errors and named in "\n".join(errors), errors


_LOAD_AND_VALIDATE = """
import json, sys, yaml, dagster as dg
from dq_assets import defs
job = defs.resolve_implicit_global_asset_job_def()
run_config = yaml.safe_load(open(sys.argv[1]))
try:
    dg.validate_run_config(job, run_config)
    errors = []
except dg.DagsterInvalidConfigError as e:
    errors = [x.message for x in e.errors]
print(json.dumps({"executor": job.executor_def.name, "errors": errors,
                  "steps": sorted(job.graph.node_dict)}))
"""


def _load_with_values_env(run_config: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DQ_", "DAGSTER_"))}
    env.update(_deployment_env(_yaml(HELM_VALUES)), PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-c", _LOAD_AND_VALIDATE, str(run_config)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_code_location_loads_with_the_k8s_executor_and_takes_the_run_config(tmp_path):
    """The environment of values.yaml's user deployment loads dq_assets with k8s_job_executor,
    and run_config.yaml is valid run config of its asset job (per-step keys are its steps)."""
    result = _load_with_values_env(K8S_RUN_CONFIG)
    assert result["executor"] == "k8s", result
    assert result["errors"] == [], result["errors"]
    per_step = _yaml(K8S_RUN_CONFIG)["execution"]["config"]["per_step_k8s_config"]
    assert per_step and set(per_step) <= set(result["steps"]), sorted(set(per_step) - set(result["steps"]))
    # (an asset's step is named by its op, not its key: staging/events runs as stage_events)
    assert "staging__events" not in result["steps"] and "stage_events" in result["steps"]

    # ... and a planted mistake fails there as well
    broken = _set(_yaml(K8S_RUN_CONFIG), "execution.config.job_namespace>namespace", None)
    (tmp_path / "run_config.yaml").write_text(yaml.safe_dump(broken))
    errors = _load_with_values_env(tmp_path / "run_config.yaml")["errors"]
    assert errors and "namespace" in "\n".join(errors), errors


# ---------------------------------------------------------------- the executor switch

def test_the_executor_switch(monkeypatch):
    monkeypatch.delenv("DQ_EXECUTOR", raising=False)
    assert build_executor("local") is dg.in_process_executor
    assert build_executor("aws") is dg.in_process_executor
    assert build_executor("aws", "multiprocess") is dg.multiprocess_executor
    monkeypatch.setenv("DQ_EXECUTOR", "k8s")
    assert build_executor("aws") is k8s_job_executor
    for name in ("multiprocess", "k8s", "celery"):  # one DuckDB writer: the local deployment stays in process
        with pytest.raises(ValueError, match="needs DQ_DEPLOYMENT=aws"):
            build_executor("local", name)
    with pytest.raises(ValueError, match="expected one of in_process, multiprocess, k8s, celery"):
        build_executor("aws", "dask")
    assert EXECUTORS == ("in_process", "multiprocess", "k8s", "celery")


def test_the_celery_executor_takes_broker_backend_and_queue_from_the_environment(monkeypatch):
    """DQ_EXECUTOR=celery: dagster-celery's executor, its broker, backend and queue read when the
    run starts (the environment of the run, as of the workers: dq_assets.celery_app); a run may
    name another queue in its run config."""
    from dagster._core.definitions.job_base import InMemoryJob
    from dagster._core.executor.init import InitExecutorContext
    from dagster._core.system_config.objects import ResolvedRunConfig

    for name in ("DQ_CELERY_BROKER_URL", "DQ_CELERY_BACKEND", "DQ_CELERY_QUEUE"):
        monkeypatch.delenv(name, raising=False)
    executor = build_executor("aws", "celery")
    assert executor.name == "celery"

    @dg.op
    def noop():
        pass

    @dg.job(executor_def=executor)
    def job():
        noop()

    def celery_of(run_config=None):
        """The executor a run with `run_config` gets, in this environment."""
        config = ResolvedRunConfig.build(job, run_config or {}).execution.execution_engine_config
        with dg.instance_for_test() as instance:
            return executor.executor_creation_fn(InitExecutorContext(
                job=InMemoryJob(job), executor_def=executor, executor_config=config, instance=instance))

    default = celery_of()
    assert (default.broker, default.backend, default.config_source.task_default_queue) == (
        "pyamqp://guest@localhost//", "rpc://", "dagster")
    monkeypatch.setenv("DQ_CELERY_BROKER_URL", "pyamqp://dq@broker.internal:5672/dq")
    monkeypatch.setenv("DQ_CELERY_BACKEND", "rpc://")
    monkeypatch.setenv("DQ_CELERY_QUEUE", "warehouse")
    configured = celery_of()
    assert (configured.broker, configured.config_source.task_default_queue) == (
        "pyamqp://dq@broker.internal:5672/dq", "warehouse")
    assert celery_of({"execution": {"config": {"queue": "big"}}}).config_source.task_default_queue == "big"


# ---------------------------------------------------------------- the guide

def test_the_guide_names_every_file_and_variable():
    guide = README.read_text()
    assert "## Beyond one machine: Kubernetes and ECS" in guide
    for path in (ECS_YAML, ECS_TASK, HELM_VALUES, K8S_RUN_CONFIG):
        assert str(path.relative_to(DEPLOY)) in guide, path
    for name in ("DQ_EXECUTOR", "DQ_DEPLOYMENT", "DQ_S3_BUCKET", "dq-warehouse-postgres",
                 "dagster-postgresql-secret"):
        assert name in guide, name
