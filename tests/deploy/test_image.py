"""The Dockerfile, checked as far as a machine without Docker can: it installs from the lock as
`make install` does, ships dbt's manifest built from a clean checkout, runs as a fixed non-root
uid with no secret in it, and every command it names exists: the code server of its CMD serves
the definitions, the healthcheck passes against each live service, and .dockerignore keeps local
state out of the build context but nothing the build needs."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import time
import uuid

import dagster as dg
import yaml
from typer.testing import CliRunner

from orchestration.defs.dbt import project as dbt_project_module
from reporting import semantic
from reporting.api.app import create_app as create_reports_app
from reporting.api.readers import DuckDBReader
from state_service.app import create_app as create_state_app
from state_service.server import ServiceThread
from tests.deploy.dockerfile import (
    ROOT,
    SECRET_SETTINGS,
    dagster_params,
    env_pairs,
    instructions,
    run_lines,
    runtime,
    runtime_uid,
    secret_name,
    stages,
    tokenwatch_params,
)
from tokenwatch import config
from tokenwatch.ports import free_port

BIN = ROOT / ".venv" / "bin"
HEALTHCHECK = ROOT / "deploy" / "docker" / "healthcheck.py"
PREPARE = "dagster-dbt project prepare-and-package --file orchestration/defs/dbt/project.py"


def healthcheck():
    spec = importlib.util.spec_from_file_location("tokenwatch_healthcheck", HEALTHCHECK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cmd() -> list[str]:
    return runtime().all("CMD")[-1].words()


def _role_commands() -> list[list[str]]:
    """The roles the Dockerfile's header names (`#   <role>   <command>`)."""
    found = []
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        m = re.match(r"#\s+the [\w ]+?\s{2,}((?:tokenwatch|dagster) [^(]+?)\s*(\(the CMD\))?$",
                     line)
        if m:
            found.append(m.group(1).split())
    return found


# -- the build ----------------------------------------------------------------------------
def test_the_image_installs_from_the_lock_as_make_install_does():
    builder, final = stages()
    assert builder.name == "builder" and final.name == "runtime"
    (python_arg,) = [i for i in instructions() if i.keyword == "ARG"
                     and i.value.startswith("PYTHON_IMAGE")]
    assert env_pairs(python_arg)["PYTHON_IMAGE"].startswith("python:3.11-slim")
    assert 'requires-python = ">=3.11' in (ROOT / "pyproject.toml").read_text()
    copies = [i.value for i in builder.all("COPY")]
    assert copies[0] == "requirements.lock ./"  # the dependency layer, cached on the lock
    runs = run_lines(builder)
    assert "pip install -r requirements.lock" in runs
    assert "pip install -c requirements.lock ." in runs
    assert "-c requirements.lock -e ." in (ROOT / "Makefile").read_text()  # the same pins
    (prepare,) = [r for r in runs if "prepare-and-package" in r]
    assert prepare == f"TOKENWATCH_ENV=prod {PREPARE}"
    assert dbt_project_module.PREPARE_COMMAND == f".venv/bin/{PREPARE}"
    assert PREPARE.split("--file ")[1] in (ROOT / "Makefile").read_text()
    # it runs where the runtime finds the dbt project: the working directory, /app
    assert [i.value for i in builder.all("WORKDIR")] == ["/app"]
    assert [i.value for i in final.all("WORKDIR")] == ["/app"]
    assert "COPY --from=builder --chown=10001:10001 /app/dbt_project /app/dbt_project" in [
        f"COPY {i.value}" for i in final.all("COPY")]


def test_it_runs_as_a_fixed_non_root_user():
    uid = runtime_uid()
    assert uid >= 1000
    (useradd,) = [r for r in run_lines(runtime()) if "useradd" in r]
    assert f"--uid {uid}" in useradd and f"--gid {uid}" in useradd
    assert f"groupadd --system --gid {uid}" in useradd
    final = runtime().instructions
    assert [i.keyword for i in final].index("USER") < [i.keyword for i in final].index("CMD")
    assert all(i.value.split(":")[0] not in ("0", "root") for i in runtime().all("USER"))


def test_no_secret_is_built_into_the_image():
    text = (ROOT / "Dockerfile").read_text()
    assert SECRET_SETTINGS >= {"TOKENWATCH_PG_DSN", "TOKENWATCH_API_KEYS", "DD_API_KEY"}
    for ins in instructions():
        if ins.keyword in ("ENV", "ARG"):
            for name, value in env_pairs(ins).items():
                assert not secret_name(name), f"{ins.keyword} {name}: a secret's name"
                assert not re.search(r"://[^/\s]*:[^/\s]*@", value), f"{name}: a password"
        if ins.keyword == "RUN":
            for name in re.findall(r"(?:^|\s)([A-Z][A-Z0-9_]*)=", ins.value):
                assert not secret_name(name), f"RUN sets {name}"
        assert "--secret" not in ins.value and "--mount=type=secret" not in ins.value
    assert not [name for name in SECRET_SETTINGS if name in text]
    assert secret_name("DD_API_KEY") and secret_name("TOKENWATCH_SNOWFLAKE_PASSWORD")
    env = {k: v for i in runtime().all("ENV") for k, v in env_pairs(i).items()}
    assert env["TOKENWATCH_ENV"] == "prod"
    settings = set(config.env_vars().values())
    assert {k for k in env if k.startswith(("TOKENWATCH_", "DD_"))} <= settings


# -- the commands it names ----------------------------------------------------------------
def test_the_cmd_is_the_code_server_of_the_workspaces_module():
    cmd = _cmd()
    assert cmd[:3] == ["dagster", "code-server", "start"]
    params = dagster_params(cmd[1:])
    workspace = yaml.safe_load((ROOT / "workspace.yaml").read_text())
    (location,) = workspace["load_from"]
    assert params["module_name"] == location["python_module"]["module_name"]
    assert params["host"] == "0.0.0.0" and params["port"] == 4000
    module = importlib.import_module(params["module_name"])
    assert isinstance(module.defs, dg.Definitions)
    assert "4000" in [w for i in runtime().all("EXPOSE") for w in i.value.split()]


def test_the_roles_it_names_parse():
    commands = _role_commands()
    assert [c[:3] for c in commands] == [["dagster", "code-server", "start"],
                                         ["tokenwatch", "serve", "--host"],
                                         ["tokenwatch", "reports", "serve"]]
    assert commands[0] == _cmd()
    exposed = {int(w) for i in runtime().all("EXPOSE") for w in i.value.split()}
    runner = CliRunner()
    from tokenwatch.cli import app

    for words in commands[1:]:
        params = tokenwatch_params(words[1:])
        assert params["host"] == "0.0.0.0" and params["port"] in exposed
        path = words[1:next(i for i, w in enumerate(words) if w.startswith("-"))]
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, result.output
    assert dagster_params(["api", "grpc-health-check", "-p", "4000"])["port"] == 4000
    done = subprocess.run([BIN / "dagster", "code-server", "start", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_the_healthcheck_is_the_copied_script():
    (check,) = runtime().all("HEALTHCHECK")
    words = check.value.split("CMD", 1)[1].strip()
    assert json.loads(words) == ["python", "/opt/tokenwatch/healthcheck.py"]
    assert "COPY deploy/docker/healthcheck.py /opt/tokenwatch/healthcheck.py" in [
        f"COPY {i.value}" for i in runtime().all("COPY")]
    assert re.search(r"--timeout=(\d+)s", check.value).group(1) == "10"


def test_the_healthcheck_knows_each_role():
    hc = healthcheck()
    for words in _role_commands():
        kind, where = hc.probe(words)
        port = str(tokenwatch_params(words[1:])["port"] if words[0] == "tokenwatch"
                   else dagster_params(words[1:])["port"])
        assert kind == ("grpc" if words[0] == "dagster" else "http")
        assert where == (port if kind == "grpc" else f"http://127.0.0.1:{port}/healthz")
        # as PID 1 shows a console script: the venv's python running it
        assert hc.probe(["/opt/venv/bin/python", f"/opt/venv/bin/{words[0]}", *words[1:]]) == \
            (kind, where)
    assert hc.probe(["tokenwatch", "db", "migrate"]) is None
    assert hc.probe(["dagster", "api", "execute_run", "{}"]) is None
    # its default ports are the command line's
    for words, port in hc.DEFAULT_PORTS.items():
        assert tokenwatch_params(list(words))["port"] == port


def _routes(app) -> set[str]:
    return {r.path for r in app.routes if "GET" in getattr(r, "methods", ())}


def test_the_health_route_is_registered_by_both_services(tmp_path):
    hc = healthcheck()
    state = create_state_app("postgresql://nobody@127.0.0.1:1/none", api_keys=[],
                             run_migrations=False)
    reports = create_reports_app(reader=DuckDBReader(tmp_path / "none.duckdb", 5),
                                 layer=semantic.for_engine("duckdb"), keys={})
    assert hc.HEALTH_PATH in _routes(state)
    assert hc.HEALTH_PATH in _routes(reports)


def test_the_healthcheck_passes_against_the_live_services(service, tmp_path):
    hc = healthcheck()
    state_port = service.url.rsplit(":", 1)[1]
    assert hc.check(["tokenwatch", "serve", "--host", "0.0.0.0", "--port", state_port]) == 0
    app = create_reports_app(reader=DuckDBReader(tmp_path / "replica.duckdb", 5),
                             layer=semantic.for_engine("duckdb"), keys={"k": uuid.uuid4().hex})
    with ServiceThread(app) as reports:
        port = reports.url.rsplit(":", 1)[1]
        assert hc.check(["tokenwatch", "reports", "serve", "--port", port]) == 0
    assert hc.check(["tokenwatch", "reports", "serve", "--port", str(free_port())]) == 1


def test_the_code_server_of_the_cmd_serves_the_definitions(tmp_path):
    """The CMD, on loopback and a free port: the code server loads orchestration.definitions and
    the healthcheck's gRPC probe passes."""
    port = str(free_port())
    cmd = [w.replace("0.0.0.0", "127.0.0.1") for w in _cmd()]
    cmd[cmd.index("-p") + 1] = port
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = os.environ | {"PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
                        "DAGSTER_HOME": str(home)}
    log = tmp_path / "code-server.log"
    with log.open("wb") as out:
        server = subprocess.Popen([str(BIN / cmd[0]), *cmd[1:]], cwd=ROOT, env=env,
                                  stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    hc = healthcheck()
    try:
        deadline, status = time.monotonic() + 240, 1
        while time.monotonic() < deadline and server.poll() is None:
            status = _check_with_path(hc, cmd, env)
            if status == 0:
                break
            time.sleep(2)
        assert status == 0, log.read_text()[-3000:]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)


def _check_with_path(hc, cmd: list[str], env: dict) -> int:
    """``hc.check(cmd)`` with the venv's ``dagster`` on PATH, as it is in the image."""
    saved = os.environ["PATH"]
    os.environ["PATH"] = env["PATH"]
    try:
        return hc.check(cmd)
    finally:
        os.environ["PATH"] = saved


# -- the build context --------------------------------------------------------------------
def _ignore_rules() -> list[tuple[bool, re.Pattern]]:
    rules = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        regex = re.escape(pattern).replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*")
        regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        rules.append((include, re.compile(f"{regex}(?:/.*)?")))
    return rules


def ignored(path: str, rules=None) -> bool:
    """Whether Docker leaves ``path`` out of the context (the last matching rule wins; a rule
    on a folder covers what is in it)."""
    out = False
    for include, rule in rules or _ignore_rules():
        if rule.fullmatch(path):
            out = not include
    return out


def test_dockerignore_keeps_local_state_out_and_what_the_build_needs_in():
    rules = _ignore_rules()
    for path in (".venv/bin/python", ".tokenwatch/warehouse.duckdb", ".git/HEAD",
                 "dbt_project/target/manifest.json", "dbt_project/logs/dbt.log",
                 "state_service/__pycache__/app.cpython-311.pyc", "tokenwatch.egg-info/PKG-INFO",
                 ".tmp_dagster_home_x/dagster.yaml", "tests/conftest.py"):
        assert ignored(path, rules), path
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    needed = [p for p in tracked if p.split("/")[0] in (
        "tokenwatch", "state_service", "ingestion", "quality", "reporting", "orchestration",
        "sandbox", "dbt_project")] + ["pyproject.toml", "README.md", "requirements.lock",
                                      "deploy/docker/healthcheck.py"]
    assert len(needed) > 100
    assert [p for p in needed if ignored(p, rules)] == []


# -- dbt's manifest from a clean checkout ----------------------------------------------------
def test_prepare_and_package_builds_the_manifest_in_a_clean_clone(tmp_path):
    """As the image's build does: the committed tree, the lock's dbt and dagster-dbt, the
    production target. The installed tokenwatch is this checkout's (editable), so the clone's
    own packages come first on the path, as in the image the tree and the packages are one:
    the manifest lands in the clone, and nothing is written here."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=120)
    assert not (clone / "dbt_project" / "target").exists()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TOKENWATCH_", "DAGSTER_", "DBT_"))}
    env |= {"PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(clone),
            "TOKENWATCH_ENV": "prod", "TOKENWATCH_HOME": str(tmp_path / "home")}
    done = subprocess.run([str(BIN / PREPARE.split()[0]), *PREPARE.split()[1:]], cwd=clone,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    manifest = clone / "dbt_project" / "target" / "manifest.json"
    assert manifest.is_file()
    text = manifest.read_text()
    assert str(clone / "dbt_project") in text
    assert f'"{ROOT}/dbt_project' not in text
    assert json.loads(text)["metadata"]["adapter_type"] == "snowflake"
    assert (clone / "dbt_project" / "target" / "semantic_manifest.json").is_file()
    shutil.rmtree(clone)


def test_the_image_records_the_commit_it_was_built_from(monkeypatch, tmp_path):
    # an image has no .git: the audit packs' software version would name no commit without
    # the build argument carried into the setting the manifest reads
    from reporting.audit_pack.manifest import software_version

    env = {}
    for ins in runtime().instructions:
        if ins.keyword == "ENV":
            env.update(env_pairs(ins))
    assert env.get("TOKENWATCH_GIT_COMMIT") == "${GIT_COMMIT}", env
    assert any(ins.keyword == "ARG" and ins.value.startswith("GIT_COMMIT")
               for ins in runtime().instructions)
    monkeypatch.setenv("TOKENWATCH_GIT_COMMIT", "0123456789abcdef0123456789abcdef01234567")
    assert software_version()["git_commit"] == "0123456789abcdef0123456789abcdef01234567"
    monkeypatch.delenv("TOKENWATCH_GIT_COMMIT")
    assert software_version()["git_commit"] == subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=config.project_root(), capture_output=True,
        text=True, check=True).stdout.strip()
