"""The deployment files agree with the code: they parse; the code location they run is the one
workspace.yaml loads, and it imports and exposes Definitions; every TOKENWATCH_* or DD_* variable
they name is a setting of tokenwatch/config.py; no secret is written in them; and the two
services' manifests run commands the command line accepts, probe routes the apps register, and
run as the image's non-root uid on a read-only root filesystem."""

from __future__ import annotations

import importlib
import re
import tomllib
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster_cloud_cli.config.models import load_dagster_cloud_yaml

from reporting import semantic
from reporting.api.app import create_app as create_reports_app
from reporting.api.readers import DuckDBReader
from state_service.app import create_app as create_state_app
from tests.deploy.dockerfile import (
    ROOT,
    SECRET_SETTINGS,
    dagster_params,
    env_pairs,
    runtime,
    runtime_uid,
    secret_name,
    tokenwatch_params,
)
from tests.deploy.tree import leaves
from tokenwatch import config

DEPLOY = ROOT / "deploy"
HELM = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
SERVICES = list(yaml.safe_load_all((DEPLOY / "helm" / "services.yaml").read_text()))
CLOUD_TEXT = (ROOT / "dagster_cloud.yaml").read_text()
WORKSPACE = yaml.safe_load((ROOT / "workspace.yaml").read_text())
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
#: The files of this deployment (deploy/snowflake/ is the warehouse's, checked on its own).
FILES = sorted([ROOT / "Dockerfile", ROOT / ".dockerignore", ROOT / "dagster_cloud.yaml",
                *(p for p in DEPLOY.rglob("*") if p.is_file() and "snowflake" not in p.parts)])
(LOCATION,) = HELM["dagster-user-deployments"]["deployments"]
DEPLOYMENTS = {d["metadata"]["name"]: d for d in SERVICES if d["kind"] == "Deployment"}


def _location() -> tuple[str, str]:
    (entry,) = WORKSPACE["load_from"]
    return entry["python_module"]["location_name"], entry["python_module"]["module_name"]


def test_the_yaml_files_parse():
    assert [d["kind"] for d in SERVICES] == ["Deployment", "Service", "Deployment", "Service"]
    for path in FILES:
        if path.suffix == ".yaml":
            assert list(yaml.safe_load_all(path.read_text())), path


def test_every_deployment_runs_the_workspaces_code_location():
    name, module = _location()
    assert (PYPROJECT["tool"]["dagster"]["module_name"],
            PYPROJECT["tool"]["dagster"]["code_location_name"]) == (module, name)
    # Helm: the chart runs `dagster code-server start -h 0.0.0.0 -p <port> <codeServerArgs>`
    assert LOCATION["name"] == name
    params = dagster_params(["code-server", "start", "-h", "0.0.0.0", "-p",
                             str(LOCATION["port"]), *LOCATION["codeServerArgs"]])
    assert params["module_name"] == module
    cmd = runtime().all("CMD")[-1].words()
    assert dagster_params(cmd[1:])["port"] == LOCATION["port"]  # the image's own CMD
    # Dagster+
    cloud = load_dagster_cloud_yaml(CLOUD_TEXT)  # dagster-cloud's own schema
    (location,) = cloud.locations
    assert (location.location_name, location.code_source.module_name) == (name, module)
    assert location.working_directory == runtime().all("WORKDIR")[-1].value
    assert location.build.directory == "."
    assert location.container_context["k8s"]["env_secrets"] == ["tokenwatch-env"]
    definitions = importlib.import_module(module).defs
    assert isinstance(definitions, dg.Definitions)
    assert definitions.resolve_job_def("ingest").name == "ingest"


def _variables(text: str) -> set[str]:
    return set(re.findall(r"(?<![A-Z0-9_])((?:TOKENWATCH|DD)_[A-Z0-9_]*)", text))


def test_every_setting_the_files_name_exists():
    settings = set(config.env_vars().values())
    named = {}
    for path in FILES:
        for variable in _variables(path.read_text()):
            named.setdefault(variable, path.relative_to(ROOT).as_posix())
    assert {"TOKENWATCH_ENV", "TOKENWATCH_SERVICE_PG_DSN", "TOKENWATCH_REPORT_KEYS",
            "DD_AGENT_HOST"} <= set(named)
    unknown = {}
    for variable, where in named.items():
        if variable.endswith("_"):  # a family: TOKENWATCH_SNOWFLAKE_*
            if not any(s.startswith(variable) for s in settings):
                unknown[variable] = where
        elif variable not in settings:
            unknown[variable] = where
    assert unknown == {}, "not settings of tokenwatch/config.py"


def _env_entries(node):
    """Every ``env:`` list item (``{name, value | valueFrom}``) in a parsed manifest."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "env" and isinstance(value, list):
                yield from value
            else:
                yield from _env_entries(value)
    elif isinstance(node, list):
        for value in node:
            yield from _env_entries(value)


@pytest.mark.parametrize("name", ["helm/values.yaml", "helm/services.yaml",
                                  "dagster_cloud.yaml", "dagster/dagster.yaml"])
def test_no_secret_is_written_in_a_file(name):
    path = ROOT / name if name == "dagster_cloud.yaml" else DEPLOY / name
    documents = list(yaml.safe_load_all(path.read_text()))
    for document in documents:
        for entry in _env_entries(document):
            if secret_name(entry["name"]):
                assert "value" not in entry, f"{entry['name']}: from a Secret, not a literal"
        for keys, value in leaves(document):
            key = keys[-1] if keys else ""
            if isinstance(value, str) and value and key != "env" and re.search(
                    r"(password|passphrase|secret|token|apikey|api_?key)$", key, re.I):
                pytest.fail(f"{'.'.join(keys)}: a literal secret")
            if isinstance(value, str):
                assert not re.search(r"://[^/\s:@]+:[^/\s@]+@", value), ".".join(keys)
                # a key's look: long, letters and digits mixed (not a NAME_LIKE_THIS)
                assert not (re.fullmatch(r"[A-Za-z0-9+/=_-]{32,}", value) and re.search(
                    r"\d", value) and re.search(r"[a-z]", value)), ".".join(keys)
    assert not [s for s in SECRET_SETTINGS if re.search(rf"{s}\s*[:=]\s*\S", path.read_text())]


# -- the two services ---------------------------------------------------------------------
def _container(deployment: dict) -> dict:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


@pytest.fixture(scope="module")
def routes(tmp_path_factory) -> dict[str, set[str]]:
    """The GET routes each app registers, by the command that serves it."""
    state = create_state_app("postgresql://nobody@127.0.0.1:1/none", api_keys=[],
                             run_migrations=False)
    reader = DuckDBReader(tmp_path_factory.mktemp("reports") / "none.duckdb", 5)
    reports = create_reports_app(reader=reader, layer=semantic.for_engine("duckdb"), keys={})

    def get(app):
        return {r.path for r in app.routes if "GET" in getattr(r, "methods", ())}
    return {"serve": get(state), "reports serve": get(reports)}


@pytest.mark.parametrize("name", ["tokenwatch-state", "tokenwatch-reports"])
def test_a_service_runs_a_real_command_and_probes_a_real_route(name, routes):
    container = _container(DEPLOYMENTS[name])
    command = container["command"]
    assert command[0] == "tokenwatch"
    params = tokenwatch_params(command[1:])
    assert params["host"] == "0.0.0.0"
    (port,) = container["ports"]
    assert port["containerPort"] == params["port"]
    served = routes["reports serve" if command[1] == "reports" else "serve"]
    probes = {k: v for k, v in container.items() if k.endswith("Probe")}
    assert {"readinessProbe", "livenessProbe"} <= set(probes)
    for probe in probes.values():
        if "httpGet" in probe:
            assert probe["httpGet"]["path"] in served
            assert probe["httpGet"]["port"] == port["name"]
        else:
            assert probe["tcpSocket"]["port"] == port["name"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    if "workers" in params:  # one worker per requested core (the default counts the node's)
        assert params["workers"] == int(container["resources"]["requests"]["cpu"])
    (service,) = [d for d in SERVICES if d["kind"] == "Service"
                  and d["metadata"]["name"] == name]
    labels = DEPLOYMENTS[name]["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert DEPLOYMENTS[name]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]


@pytest.mark.parametrize("name", ["tokenwatch-state", "tokenwatch-reports"])
def test_a_service_runs_unprivileged_on_a_read_only_filesystem(name):
    spec = DEPLOYMENTS[name]["spec"]["template"]["spec"]
    container = _container(DEPLOYMENTS[name])
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == runtime_uid()
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {"allowPrivilegeEscalation": False,
                                            "readOnlyRootFilesystem": True,
                                            "capabilities": {"drop": ["ALL"]}}
    # the writable places: /tmp and the image's TOKENWATCH_HOME, as emptyDirs
    home = {k: v for i in runtime().all("ENV") for k, v in env_pairs(i).items()}[
        "TOKENWATCH_HOME"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    for path in ("/tmp", home):
        assert "emptyDir" in volumes[mounts[path]], path
    assert [e["secretRef"]["name"] for e in container["envFrom"]] == [f"{name}-env"]
    assert container["image"].endswith(":TAG")


def test_the_code_location_runs_as_the_images_user():
    assert LOCATION["podSecurityContext"]["runAsUser"] == runtime_uid()
    assert LOCATION["podSecurityContext"]["runAsNonRoot"] is True
    assert LOCATION["securityContext"]["allowPrivilegeEscalation"] is False
    assert LOCATION["image"]["tag"] is None  # set per release: one immutable tag per commit
    assert LOCATION["image"]["pullPolicy"] == "IfNotPresent"


def test_every_pod_that_connects_to_postgresql_mounts_the_rds_ca():
    ca = Path(HELM["postgresql"]["postgresqlParams"]["sslrootcert"])
    pods = {"webserver": HELM["dagsterWebserver"], "daemon": HELM["dagsterDaemon"],
            "code location": LOCATION}
    pods |= {name: _container(d) | {"volumes": d["spec"]["template"]["spec"]["volumes"]}
             for name, d in DEPLOYMENTS.items()}
    for name, pod in pods.items():
        mounts = {m["mountPath"]: m["name"] for m in pod["volumeMounts"]}
        assert str(ca.parent) in mounts, name
        (volume,) = [v for v in pod["volumes"] if v["name"] == mounts[str(ca.parent)]]
        assert volume["configMap"] == {"name": "rds-ca-bundle"}, name


def _mounts(container: dict, volumes: list[dict]) -> dict[str, dict]:
    """mountPath -> the volume mounted there (with the mount's readOnly)."""
    by_name = {v["name"]: v for v in volumes}
    return {m["mountPath"]: by_name[m["name"]] | {"readOnly": m.get("readOnly", False)}
            for m in container["volumeMounts"]}


def _launcher_pod(launcher: dict | None = None) -> tuple[dict, dict]:
    """Dagster's k8s config (deploy/dagster/dagster.yaml's run launcher, or dagster_cloud.yaml's
    container context): the pods' env and mounts, as a container's."""
    if launcher is None:
        launcher = yaml.safe_load((DEPLOY / "dagster" / "dagster.yaml").read_text())[
            "run_launcher"]["config"]
    env = dict(v.split("=", 1) for v in launcher.get("env_vars", []))
    mounts = [{"name": m["name"], "mountPath": m["mount_path"],
               "readOnly": m.get("read_only", False)} for m in launcher["volume_mounts"]]
    return env, _mounts({"volumeMounts": mounts}, launcher["volumes"])


def _cloud_k8s() -> dict:
    (location,) = load_dagster_cloud_yaml(CLOUD_TEXT).locations
    return location.container_context["k8s"]


def test_the_snowflake_key_is_a_file_mounted_from_a_secret():
    """The Snowflake users authenticate with a key pair (deploy/snowflake/): the key is a file,
    TOKENWATCH_SNOWFLAKE_PRIVATE_KEY_PATH, in a read-only Secret volume of each pod that opens
    the warehouse: the code location (and its runs), the reports API."""
    variable = "TOKENWATCH_SNOWFLAKE_PRIVATE_KEY_PATH"
    reports = DEPLOYMENTS["tokenwatch-reports"]
    pods = {
        "code location": ({e["name"]: e["value"] for e in LOCATION["env"]},
                          _mounts(LOCATION, LOCATION["volumes"])),
        "runs (dagster.yaml)": _launcher_pod(),
        "Dagster+": _launcher_pod(_cloud_k8s()),
        "reports API": ({e["name"]: e.get("value") for e in _container(reports)["env"]},
                        _mounts(_container(reports), reports["spec"]["template"]["spec"][
                            "volumes"])),
    }
    for name, (env, mounts) in pods.items():
        folder = str(Path(env[variable]).parent)
        assert "secret" in mounts[folder] and mounts[folder]["readOnly"], name
    assert "TOKENWATCH_SNOWFLAKE_PRIVATE_KEY_PATH" not in SECRET_SETTINGS  # a path, not a key


def test_the_audit_packs_live_on_a_volume_every_run_shares(tmp_path, monkeypatch):
    """The daily review reads yesterday's pack (orchestration/defs/audit/pack.py): the packs'
    folder, TOKENWATCH_AUDIT_PACK_DIR's default under the image's TOKENWATCH_HOME, is the
    ReadWriteMany claim of deploy/helm/storage.yaml in the code location and its runs."""
    monkeypatch.setenv("TOKENWATCH_HOME", str(tmp_path))
    monkeypatch.delenv("TOKENWATCH_AUDIT_PACK_DIR", raising=False)
    relative = config.audit_pack_dir().relative_to(tmp_path)
    home = {k: v for i in runtime().all("ENV") for k, v in env_pairs(i).items()}[
        "TOKENWATCH_HOME"]
    packs = str(Path(home) / relative)
    (claim,) = yaml.safe_load_all((DEPLOY / "helm" / "storage.yaml").read_text())
    assert claim["kind"] == "PersistentVolumeClaim"
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    for name, mounts in (("code location", _mounts(LOCATION, LOCATION["volumes"])),
                         ("runs (dagster.yaml)", _launcher_pod()[1]),
                         ("Dagster+", _launcher_pod(_cloud_k8s())[1])):
        assert mounts[packs]["persistentVolumeClaim"] == {
            "claimName": claim["metadata"]["name"]}, name
        assert not mounts[packs]["readOnly"], name
