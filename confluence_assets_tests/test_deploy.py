"""deploy/values.yaml for Dagster's Helm chart: the instance it makes is one Dagster and dagster-k8s accept,
and it is the instance the repository's dagster.yaml describes (queue, pools, monitoring, retries).

No helm binary here: ``chart_instance`` renders the dagster.yaml the chart makes from the values we set,
key for key as the chart's templates do (helm/dagster/templates/configmap-instance.yaml and
helpers/instance/*.tpl, chart 1.13). Dagster's own loader (``dagster_instance_config``, the one
``DagsterInstance`` uses) then validates the whole file, and each configurable class (K8sRunLauncher,
QueuedRunCoordinator, the PostgreSQL storages) validates its ``config`` against its own ``config_type()``.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from dagster._config import validate_config
from dagster._core.instance.config import dagster_instance_config
from dagster_k8s.models import k8s_snake_case_dict

from confluence_assets import settings

ROOT = Path(__file__).resolve().parents[1]
VALUES = ROOT / "deploy" / "values.yaml"
DAGSTER_YAML = ROOT / "dagster.yaml"
RELEASE = "dagster"  # the release name docs/deploy.md installs; the chart's fullname is the same
NAMESPACE = "dagster"


def _postgres(values: dict) -> dict[str, Any]:
    pg = values["postgresql"]
    config = {
        "username": pg["postgresqlUsername"],
        "password": {"env": "DAGSTER_PG_PASSWORD"},  # from global.postgresqlSecretName's postgresql-password
        "hostname": pg["postgresqlHost"],
        "db_name": pg["postgresqlDatabase"],
        "port": pg["service"]["port"],
        "params": pg.get("postgresqlParams") or {},
    }
    if pg.get("postgresqlScheme"):
        config["scheme"] = pg["postgresqlScheme"]
    return {"postgres_db": config}


def _k8s_run_launcher(values: dict) -> dict[str, Any]:
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    config: dict[str, Any] = {
        "load_incluster_config": launcher["loadInclusterConfig"],
        "job_namespace": launcher.get("jobNamespace") or NAMESPACE,
        "image_pull_policy": launcher["imagePullPolicy"],
        "service_account_name": RELEASE,
        "dagster_home": values["global"]["dagsterHome"],
        "instance_config_map": f"{RELEASE}-instance",
        "postgres_password_secret": values["global"]["postgresqlSecretName"],
    }
    for key, field in (("envConfigMaps", "env_config_maps"), ("envSecrets", "env_secrets")):
        if launcher.get(key):
            config[field] = [item["name"] for item in launcher[key] if "name" in item]
    for key, field in (("envVars", "env_vars"), ("resources", "resources"), ("securityContext", "security_context")):
        if launcher.get(key):
            config[field] = launcher[key]
    if launcher.get("runK8sConfig"):
        run = launcher["runK8sConfig"]
        names = {
            "containerConfig": "container_config",
            "podSpecConfig": "pod_spec_config",
            "podTemplateSpecMetadata": "pod_template_spec_metadata",
            "jobSpecConfig": "job_spec_config",
            "jobMetadata": "job_metadata",
        }
        config["run_k8s_config"] = {field: run[key] for key, field in names.items() if run.get(key)}
    return {"module": "dagster_k8s", "class": "K8sRunLauncher", "config": config}


def chart_instance(values: dict) -> dict[str, Any]:
    """The dagster.yaml the chart renders from ``values`` (the keys deploy/values.yaml sets)."""
    storage = _postgres(values)
    daemon = values["dagsterDaemon"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    instance: dict[str, Any] = {
        "scheduler": {"module": "dagster._core.scheduler", "class": "DagsterDaemonScheduler"},
        "schedule_storage": {
            "module": "dagster_postgres.schedule_storage",
            "class": "PostgresScheduleStorage",
            "config": storage,
        },
        "run_launcher": _k8s_run_launcher(values),
        "run_storage": {"module": "dagster_postgres.run_storage", "class": "PostgresRunStorage", "config": storage},
        "event_log_storage": {
            "module": "dagster_postgres.event_log",
            "class": "PostgresEventLogStorage",
            "config": storage,
        },
        "telemetry": {"enabled": values["telemetry"]["enabled"]},
    }
    coordinator = daemon["runCoordinator"]
    if daemon["enabled"] and coordinator["enabled"]:
        assert coordinator["type"] == "QueuedRunCoordinator"
        queued = {k: v for k, v in (coordinator["config"].get("queuedRunCoordinator") or {}).items() if v is not None}
        names = {
            "maxConcurrentRuns": "max_concurrent_runs",
            "tagConcurrencyLimits": "tag_concurrency_limits",
            "dequeueIntervalSeconds": "dequeue_interval_seconds",
        }
        instance["run_coordinator"] = {"module": "dagster._core.run_coordinator", "class": "QueuedRunCoordinator"}
        if queued:
            instance["run_coordinator"]["config"] = {names[k]: v for k, v in queued.items()}
    concurrency = values.get("concurrency") or {}
    pools, runs = concurrency.get("pools") or {}, concurrency.get("runs") or {}
    rendered: dict[str, Any] = {}
    if pools.get("defaultLimit") is not None:
        rendered["pools"] = {"default_limit": pools["defaultLimit"]}
    if runs.get("maxConcurrentRuns") is not None or runs.get("tagConcurrencyLimits"):
        rendered["runs"] = {}
        if runs.get("maxConcurrentRuns") is not None:
            rendered["runs"]["max_concurrent_runs"] = runs["maxConcurrentRuns"]
        if runs.get("tagConcurrencyLimits"):
            rendered["runs"]["tag_concurrency_limits"] = runs["tagConcurrencyLimits"]
    if rendered:
        instance["concurrency"] = rendered
    monitoring = daemon["runMonitoring"]
    if daemon["enabled"] and monitoring["enabled"]:
        instance["run_monitoring"] = {
            "enabled": True,
            "start_timeout_seconds": monitoring["startTimeoutSeconds"],
            "poll_interval_seconds": monitoring["pollIntervalSeconds"],
        }
    retries = daemon["runRetries"]
    if daemon["enabled"] and retries["enabled"]:
        instance["run_retries"] = {"enabled": True, "max_retries": retries["maxRetries"]}
        if retries.get("retryOnAssetOrOpFailure") is not None:
            instance["run_retries"]["retry_on_asset_or_op_failure"] = retries["retryOnAssetOrOpFailure"]
    return instance


@pytest.fixture(scope="module")
def values() -> dict:
    return yaml.safe_load(VALUES.read_text())


@pytest.fixture(scope="module")
def instance(values, tmp_path_factory) -> dict:
    """The rendered dagster.yaml, loaded and validated by Dagster's own instance loader."""
    home = tmp_path_factory.mktemp("dagster_home")
    (home / "dagster.yaml").write_text(yaml.safe_dump(chart_instance(values)))
    loaded, custom_class = dagster_instance_config(str(home))
    assert custom_class is None
    return dict(loaded)


def _class_of(section: dict):
    return getattr(importlib.import_module(section["module"]), section["class"])


def test_the_instance_validates_against_dagster_and_dagster_k8s_schemas(instance):
    from dagster import QueuedRunCoordinator
    from dagster_k8s import K8sRunLauncher
    from dagster_postgres import PostgresEventLogStorage

    assert _class_of(instance["run_launcher"]) is K8sRunLauncher
    assert _class_of(instance["run_coordinator"]) is QueuedRunCoordinator
    assert _class_of(instance["event_log_storage"]) is PostgresEventLogStorage
    for name in ("run_launcher", "run_coordinator", "run_storage", "event_log_storage", "schedule_storage"):
        section = instance[name]
        result = validate_config(_class_of(section).config_type(), section.get("config") or {})
        assert result.success, (name, [e.message for e in result.errors])
    launcher = instance["run_launcher"]["config"]
    # The per-run pod spec: each part is a valid Kubernetes object (dagster-k8s converts the chart's
    # camelCase keys with the kubernetes client's models and refuses unknown ones).
    run = launcher["run_k8s_config"]
    for field, model in (
        ("container_config", kubernetes.client.V1Container),
        ("pod_spec_config", kubernetes.client.V1PodSpec),
        ("job_spec_config", kubernetes.client.V1JobSpec),
    ):
        assert k8s_snake_case_dict(model, run[field])
    resources = k8s_snake_case_dict(kubernetes.client.V1Container, run["container_config"])["resources"]
    assert resources["requests"]["memory"] and resources["limits"]["memory"]


def test_a_wrong_value_is_refused_by_the_same_validation(values):
    """The validation has teeth: a misspelt run launcher field and an unknown pod spec field fail."""
    from dagster_k8s import K8sRunLauncher

    config = dict(chart_instance(values)["run_launcher"]["config"], job_namespce="dagster")
    assert not validate_config(K8sRunLauncher.config_type(), config).success
    with pytest.raises(Exception, match="nodeSelectr"):
        k8s_snake_case_dict(kubernetes.client.V1PodSpec, {"nodeSelectr": {"pool": "runs"}})


def test_queue_pools_monitoring_and_retries_are_dagster_yamls(instance):
    """One behaviour on one machine and on Kubernetes: the run queue (one run per space partition), the
    confluence_api pool's slots, run monitoring and run retries equal the repository's dagster.yaml."""
    local = yaml.safe_load(DAGSTER_YAML.read_text())
    assert instance["concurrency"]["runs"] == local["concurrency"]["runs"]
    assert instance["concurrency"]["pools"] == local["concurrency"]["pools"]
    per_space = {"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
    assert per_space in instance["concurrency"]["runs"]["tag_concurrency_limits"]
    for section in ("run_monitoring", "run_retries"):
        assert {k: instance[section][k] for k in local[section]} == local[section], section
    assert instance["run_retries"]["retry_on_asset_or_op_failure"] is False
    assert instance["telemetry"] == local["telemetry"]
    dequeue = instance["run_coordinator"]["config"]["dequeue_interval_seconds"]
    assert dequeue == local["run_queue"]["dequeue_interval_seconds"]


def test_secrets_come_from_kubernetes_secrets_and_env_names_are_settings(values):
    deployment = values["dagster-user-deployments"]["deployments"][0]
    assert deployment["codeServerArgs"] == ["-m", "confluence_assets.definitions"]
    secrets = {s["name"] for s in deployment["envSecrets"]}
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    assert secrets <= {s["name"] for s in launcher["envSecrets"]}  # run pods read the same Secret
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True
    known = set(settings._NAMES)
    secret_names = {settings.DATABASE_URL, settings.CONFLUENCE_API_TOKEN, settings.CONFLUENCE_PAT}
    secret_names |= {settings.OPENAI_API_KEY, settings.CONFLUENCE_EMAIL}
    for item in deployment["env"]:
        assert item["name"] in known, item["name"]  # a name the code reads, spelt as settings.py spells it
        assert item["name"] not in secret_names, f"{item['name']} belongs in the Secret, not in values"
    docs = (ROOT / "docs" / "deploy.md").read_text()
    for name in secret_names:
        assert name in docs  # the Secret's keys are listed for the user
    assert values["postgresql"]["enabled"] is False and values["generatePostgresqlPasswordSecret"] is False
    assert values["postgresql"]["postgresqlScheme"] == "postgresql+psycopg2"


def test_the_image_runs_as_a_non_root_user_from_the_wheel():
    lines = (ROOT / "deploy" / "Dockerfile").read_text().splitlines()
    instructions = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    stages = instructions.split("\nFROM ")
    assert len(stages) == 3, "a build stage and a runtime stage"
    runtime = stages[-1]
    assert "pip wheel" in stages[1] and "--no-index --find-links /wheels" in runtime
    assert "USER 10001" in runtime and "ENTRYPOINT" not in runtime  # the chart gives the command as args
    assert not {"gcc", "build-essential", "apt-get"} & set(runtime.split())
