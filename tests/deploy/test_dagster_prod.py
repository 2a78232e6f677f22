"""The production Dagster instance, deploy/dagster/dagster.yaml: Dagster loads and validates it
as it loads any instance; it keeps runs in PostgreSQL with every credential from the
environment, launches runs as Kubernetes Jobs, queues them within limits, and lets the
warehouse pool (orchestration/resources.py) take more than the local DuckDB's one writer. The
storage, the queue and the pool limit are then exercised on a real instance over the local
PostgreSQL. deploy/helm/values.yaml, from which Dagster's chart writes the same instance, says
the same.

dagster-k8s is not installed here (the run launcher is loaded only by the webserver and the
daemon, which run Dagster's own images): the launcher's block is checked by its names, not by
dagster-k8s's schema."""

from __future__ import annotations

import ast
import re
import uuid
from pathlib import Path

import pytest
import yaml
from dagster import DagsterInstance
from dagster._core.instance.config import dagster_instance_config
from dagster._core.instance.ref import InstanceRef
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster._core.storage.noop_compute_log_manager import NoOpComputeLogManager
from psycopg.conninfo import conninfo_to_dict

from orchestration.resources import WAREHOUSE_POOL
from tests.deploy.dockerfile import runtime_uid
from tests.deploy.tree import leaves
from tokenwatch.postgres import drop_database, ensure_database

ROOT = Path(__file__).resolve().parents[2]
PROD_DIR = ROOT / "deploy" / "dagster"
PROD = yaml.safe_load((PROD_DIR / "dagster.yaml").read_text())
LOCAL = yaml.safe_load((ROOT / "orchestration" / "dagster.yaml").read_text())
HELM = yaml.safe_load((ROOT / "deploy" / "helm" / "values.yaml").read_text())
SECRETISH = re.compile(r"(.*_)?(password|passphrase|secret|token|api_key|dsn|url)", re.I)


def test_dagster_loads_and_validates_the_instance():
    config, custom_class = dagster_instance_config(str(PROD_DIR))
    assert custom_class is None
    assert set(config) >= {"storage", "run_launcher", "run_coordinator", "concurrency",
                           "compute_logs", "telemetry"}
    ref = InstanceRef.from_dir(str(PROD_DIR))
    assert (ref.storage_data.module_name, ref.storage_data.class_name) == (
        "dagster_postgres", "DagsterPostgresStorage")
    assert (ref.run_launcher_data.module_name, ref.run_launcher_data.class_name) == (
        "dagster_k8s", "K8sRunLauncher")
    assert config["telemetry"] == {"enabled": False}


def test_storage_is_postgres_with_every_credential_from_the_environment():
    assert set(PROD["storage"]) == {"postgres"}
    db = PROD["storage"]["postgres"]["postgres_db"]
    assert "postgres_url" not in PROD["storage"]["postgres"]
    assert {field: db[field] for field in ("hostname", "port", "username", "password",
                                           "db_name")} == {
        "hostname": {"env": "DAGSTER_PG_HOST"}, "port": {"env": "DAGSTER_PG_PORT"},
        "username": {"env": "DAGSTER_PG_USER"}, "password": {"env": "DAGSTER_PG_PASSWORD"},
        "db_name": {"env": "DAGSTER_PG_DB"}}
    assert db["params"]["sslmode"] == "verify-full"


def test_no_value_is_a_literal_secret():
    assert SECRETISH.fullmatch("password") and SECRETISH.fullmatch("postgres_url")
    assert not SECRETISH.fullmatch("key")  # a tag limit's key
    for path, value in leaves(PROD):
        if path[-1] != "env" and SECRETISH.fullmatch(path[-1]) and isinstance(value, str):
            pytest.fail(f"{'.'.join(path)} is a literal; give it as {{env: NAME}}")
        if isinstance(value, str):
            assert not re.search(r"://[^/\s]*:[^/\s]*@", value), path  # a URL with a password


def test_runs_are_kubernetes_jobs_of_the_code_locations_image():
    launcher = PROD["run_launcher"]["config"]
    assert launcher["instance_config_map"] == "dagster-instance"
    assert "tokenwatch-env" in launcher["env_secrets"]
    assert "dagster-postgresql" in launcher["env_secrets"]  # DAGSTER_PG_* in the run pods
    assert "job_image" not in launcher  # the code location's image (DAGSTER_CURRENT_IMAGE)
    assert launcher["image_pull_policy"] == "IfNotPresent" and launcher["job_namespace"]
    pod = launcher["run_k8s_config"]["pod_spec_config"]["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] == runtime_uid()
    assert launcher["security_context"]["allowPrivilegeEscalation"] is False
    mounted = {m["name"] for m in launcher["volume_mounts"]}
    assert mounted == {v["name"] for v in launcher["volumes"]}
    assert any(m["mount_path"] == str(Path(PROD["storage"]["postgres"]["postgres_db"][
        "params"]["sslrootcert"]).parent) for m in launcher["volume_mounts"])


def test_runs_queue_within_limits():
    coordinator = PROD["run_coordinator"]
    assert isinstance(InstanceRef.from_dir(str(PROD_DIR)).run_coordinator, QueuedRunCoordinator)
    assert coordinator.get("config", {}) == {}  # the limits are concurrency.runs'
    runs = PROD["concurrency"]["runs"]
    assert 0 < runs["max_concurrent_runs"] <= 20
    by_key = {limit["key"]: limit for limit in runs["tag_concurrency_limits"]}
    assert by_key["dagster/schedule_name"] == {
        "key": "dagster/schedule_name", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}


def test_the_warehouse_pool_takes_more_writers_than_duckdb():
    assert LOCAL["concurrency"]["pools"] == {"default_limit": 1, "granularity": "op"}
    assert PROD["concurrency"]["pools"] == {"default_limit": 4, "granularity": "op"}
    # the limit applies to the warehouse pool: it is the only pool any asset or check names
    pools = set()
    for path in (ROOT / "orchestration").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.keyword) and node.arg == "pool":
                pools.add(ast.unparse(node.value))
    assert pools == {"WAREHOUSE_POOL"}


@pytest.fixture()
def dagster_database(pg_server, monkeypatch) -> str:
    """A database of its own on the local server, named by the DAGSTER_PG_* variables."""
    name = f"dagster_prod_{uuid.uuid4().hex[:10]}"
    params = conninfo_to_dict(ensure_database(pg_server, name))
    for var, value in {"DAGSTER_PG_HOST": params.get("host", "127.0.0.1"),
                       "DAGSTER_PG_PORT": params.get("port", "5432"),
                       "DAGSTER_PG_USER": params.get("user", "postgres"),
                       "DAGSTER_PG_PASSWORD": params.get("password", ""),
                       "DAGSTER_PG_DB": name}.items():
        monkeypatch.setenv(var, str(value))
    yield name
    drop_database(pg_server, name)


def test_the_instance_runs_on_postgresql_with_the_pool_limit(dagster_database, tmp_path):
    """The instance as written, but for TLS (the local server has none): its storage creates
    Dagster's schema from the environment's variables, the coordinator queues, and the
    warehouse pool gets the default limit."""
    config = yaml.safe_load((PROD_DIR / "dagster.yaml").read_text())
    config["storage"]["postgres"]["postgres_db"]["params"] = {}
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(config))
    instance = DagsterInstance.from_ref(InstanceRef.from_dir(str(tmp_path)))
    try:
        assert instance.get_runs() == []
        assert type(instance.run_storage).__module__.startswith("dagster_postgres")
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        assert isinstance(instance.compute_log_manager, NoOpComputeLogManager)
        concurrency = instance.get_concurrency_config()
        assert concurrency.run_queue_config.max_concurrent_runs == \
            PROD["concurrency"]["runs"]["max_concurrent_runs"]
        assert concurrency.pool_config.default_pool_limit == 4
        storage = instance.event_log_storage
        assert storage.initialize_concurrency_limit_to_default(WAREHOUSE_POOL)
        assert storage.get_concurrency_info(WAREHOUSE_POOL).slot_count == 4
    finally:
        instance.dispose()


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.title() for word in rest)


def _camel_keys(node):
    """snake_case keys as the chart's camelCase (tag limits' inner keys stay as Dagster's)."""
    if isinstance(node, dict):
        return {(_camel(k) if "_" in k else k): _camel_keys(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_camel_keys(v) for v in node]
    return node


def test_the_helm_values_say_what_the_instance_says():
    assert HELM["concurrency"]["enabled"] is True
    assert {k: v for k, v in HELM["concurrency"].items() if k != "enabled"} == \
        _camel_keys(PROD["concurrency"])
    assert HELM["dagsterDaemon"]["runCoordinator"] == {"enabled": True,
                                                       "type": PROD["run_coordinator"]["class"]}
    assert HELM["dagsterDaemon"]["runMonitoring"] == _camel_keys(PROD["run_monitoring"])
    assert {k: v for k, v in HELM["retention"].items() if k != "enabled"} == \
        _camel_keys(PROD["retention"])
    assert HELM["telemetry"] == PROD["telemetry"]
    assert HELM["computeLogManager"]["type"] == PROD["compute_logs"]["class"]
    assert HELM["postgresql"]["enabled"] is False
    assert HELM["generatePostgresqlPasswordSecret"] is False
    assert "postgresqlPassword" not in HELM["postgresql"]
    assert HELM["postgresql"]["postgresqlParams"] == \
        PROD["storage"]["postgres"]["postgres_db"]["params"]
    assert HELM["runLauncher"]["type"] == PROD["run_launcher"]["class"]
    k8s = HELM["runLauncher"]["config"]["k8sRunLauncher"]
    launcher = PROD["run_launcher"]["config"]
    assert k8s["jobNamespace"] == launcher["job_namespace"]
    assert k8s["imagePullPolicy"] == launcher["image_pull_policy"]
    assert k8s["failPodOnRunFailure"] == launcher["fail_pod_on_run_failure"]
    assert k8s["resources"] == launcher["resources"]
    # the run pods get the code location's secret, volumes, account and security context
    (location,) = HELM["dagster-user-deployments"]["deployments"]
    assert location["includeConfigInLaunchedRuns"] == {"enabled": True}
    assert location["envSecrets"] == [{"name": "tokenwatch-env"}]
    assert location["volumes"] == launcher["volumes"]
    assert [m["mountPath"] for m in location["volumeMounts"]] == \
        [m["mount_path"] for m in launcher["volume_mounts"]]
    assert HELM["dagster-user-deployments"]["serviceAccount"]["name"] == \
        launcher["service_account_name"]
    pod = launcher["run_k8s_config"]["pod_spec_config"]["securityContext"]
    assert {k: location["podSecurityContext"][k] for k in pod} == pod
    assert location["securityContext"] == launcher["security_context"]
