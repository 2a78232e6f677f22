"""The settings object (``tokenwatch.config.Settings``): the README's configuration table says
what it holds, no other module reads the environment for one of its variables, and a bad value
reads as it always did."""

from __future__ import annotations

import ast
import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from tokenwatch import config

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PACKAGES = ("tokenwatch", "state_service", "ingestion", "quality", "reporting", "orchestration",
            "sandbox")


@pytest.fixture
def env(monkeypatch):
    """No setting in the environment (the session's TOKENWATCH_HOME and DSN come back after)."""
    for name in config.env_vars().values():
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


# -- the README's table ---------------------------------------------------------------------


def readme_table(text: str) -> dict[str, tuple[str, str]]:
    """The configuration table: variable -> (default cell, meaning cell). One variable a row."""
    section = text.split("\n## Configuration\n", 1)[1].split("\n#", 1)[0]
    rows: dict[str, tuple[str, str]] = {}
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        assert len(cells) == 3, f"a row of three cells: {line}"
        name = re.fullmatch(r"`([A-Z][A-Z0-9_]*)`", cells[0])
        assert name, f"one variable a row, as `NAME`: {cells[0]}"
        assert name[1] not in rows, f"{name[1]} is in the table twice"
        rows[name[1]] = (cells[1], cells[2])
    return rows


def shown(default) -> str | None:
    """How the table shows ``default``: None for unset, '' for empty, else the literal."""
    if default is None:
        return None
    if isinstance(default, bool):
        return "true" if default else "false"
    if isinstance(default, str | tuple | frozenset) and not default:
        return ""
    if isinstance(default, datetime):
        return default.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(default, date):
        return default.isoformat()
    return str(default)


def table_problems(text: str) -> list[str]:
    """Where the README's table and :class:`config.Settings` disagree."""
    table = readme_table(text)
    problems = []
    for name, field in config.Settings.model_fields.items():
        var = field.validation_alias
        if var not in table:
            problems.append(f"{var} ({name}) is a setting but not in the README's table")
            continue
        default_cell, meaning = table[var]
        expected = shown(field.default)
        if expected is None:
            ok = default_cell.startswith("unset")
        elif expected == "":
            ok = default_cell.startswith("empty")
        else:
            literal = re.match(r"`([^`]*)`", default_cell)
            ok = bool(literal) and literal[1] == expected
        if not ok:
            want = {None: "unset...", "": "empty..."}.get(expected, f"`{expected}`...")
            problems.append(f"{var}: the table's default is {default_cell!r}, the class's "
                            f"{field.default!r} (the cell should read {want})")
        if " ".join(meaning.split()) != " ".join((field.description or "").split()):
            problems.append(f"{var}: the table says {meaning!r}, the description "
                            f"{field.description!r}")
    variables = set(config.env_vars().values())
    problems += [f"{var} is in the README's table but not a setting"
                 for var in table if var not in variables]
    return problems


def test_the_readme_table_is_the_settings_class():
    assert table_problems(README.read_text()) == []


def test_the_table_check_sees_a_missing_an_extra_and_a_wrong_default_row():
    text = README.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| `TOKENWATCH_STREAM` |"))
    assert any("TOKENWATCH_STREAM (stream) is a setting but not" in p
               for p in table_problems(text.replace(row + "\n", "")))
    extra = row.replace("`TOKENWATCH_STREAM`", "`TOKENWATCH_STREAMS`")
    assert any("TOKENWATCH_STREAMS is in the README's table but not" in p
               for p in table_problems(text.replace(row, row + "\n" + extra)))
    wrong = row.replace("`wallet-events`", "`events`")
    assert any(p.startswith("TOKENWATCH_STREAM: the table's default")
               for p in table_problems(text.replace(row, wrong)))
    unset = next(line for line in text.splitlines() if line.startswith("| `DD_API_KEY` |"))
    assert any(p.startswith("DD_API_KEY: the table's default")
               for p in table_problems(text.replace(unset, unset.replace("unset", "`k`"))))
    reworded = row.replace("the Kinesis stream", "a Kinesis stream")
    assert any(p.startswith("TOKENWATCH_STREAM: the table says")
               for p in table_problems(text.replace(row, reworded)))


def test_the_snowflake_family_is_one_field_per_variable():
    for key in config.SNOWFLAKE_SETTINGS:
        assert config.env_var(f"snowflake_{key}") == f"TOKENWATCH_SNOWFLAKE_{key.upper()}"


# -- nobody else reads the environment ------------------------------------------------------


def _string_constants(tree: ast.Module) -> dict[str, str]:
    """Module-level ``NAME = "..."`` assignments."""
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) \
                and isinstance(node.value.value, str):
            out.update({t.id: node.value.value for t in node.targets if isinstance(t, ast.Name)})
    return out


def _is_environ(node: ast.AST) -> bool:
    """``os.environ`` or a bare ``environ``."""
    return (isinstance(node, ast.Attribute) and node.attr == "environ"
            and isinstance(node.value, ast.Name) and node.value.id == "os") \
        or (isinstance(node, ast.Name) and node.id == "environ")


def env_reads(source: str) -> list[str]:
    """The environment reads in ``source`` of a setting's variable (a ``TOKENWATCH_*`` or
    ``DD_*`` name, or any other variable of ``Settings``), or of a name that is not a literal:
    ``os.environ[...]``, ``os.environ.get/pop/setdefault``, ``os.getenv``, ``... in os.environ``,
    and iterating ``os.environ``. Writing it for a child process is no read."""
    tree = ast.parse(source)
    constants = _string_constants(tree)
    settings_vars = set(config.env_vars().values())
    found = []

    def check(node: ast.AST, key: ast.AST | None) -> None:
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            name = key.value
        elif isinstance(key, ast.Name) and key.id in constants:
            name = constants[key.id]
        elif isinstance(key, ast.JoinedStr) and key.values \
                and isinstance(key.values[0], ast.Constant):
            name = key.values[0].value + "..."
        else:
            found.append(f"line {node.lineno}: reads a variable named by an expression "
                         f"({ast.unparse(key) if key else '?'})")
            return
        if name.startswith(("TOKENWATCH_", "DD_")) or name in settings_vars:
            found.append(f"line {node.lineno}: reads {name}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            func = node.func
            if _is_environ(func.value) and func.attr in ("get", "pop", "setdefault"):
                check(node, node.args[0] if node.args else None)
            elif _is_environ(func.value) and func.attr in ("items", "keys", "values"):
                found.append(f"line {node.lineno}: iterates the environment "
                             f"(os.environ.{func.attr}())")
            elif func.attr == "getenv" and isinstance(func.value, ast.Name) \
                    and func.value.id == "os":
                check(node, node.args[0] if node.args else None)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id == "getenv":
            check(node, node.args[0] if node.args else None)
        elif isinstance(node, ast.Subscript) and _is_environ(node.value) \
                and isinstance(node.ctx, ast.Load):
            check(node, node.slice)
        elif isinstance(node, ast.Compare) and any(_is_environ(c) for c in node.comparators):
            check(node, node.left)
    return found


def test_no_module_but_the_settings_reads_a_settings_variable():
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == ROOT / "tokenwatch" / "config.py":
                continue
            found += [f"{path.relative_to(ROOT)} {read}" for read in env_reads(path.read_text())]
    assert found == [], "read tokenwatch.config.settings() instead:\n" + "\n".join(found)


@pytest.mark.parametrize("source", [
    'import os\nos.environ["TOKENWATCH_ENV"]',
    'import os\nos.environ.get("DD_API_KEY", "")',
    'import os\nos.getenv("TOKENWATCH_HOME")',
    'from os import environ, getenv\nenviron.get("TOKENWATCH_X")\ngetenv("DD_SITE")',
    'import os\nNAME = "TOKENWATCH_DD_API_HOST"\nos.environ.get(NAME)',
    'import os\nos.environ.get(f"TOKENWATCH_{x}")',
    'import os\nos.environ.get(ROLES[role])',
    'import os\n"TOKENWATCH_ENV" in os.environ',
    'import os\nos.environ.get("PGUSER", "postgres")',
    'import os\n{k: v for k, v in os.environ.items() if k.startswith("TOKENWATCH_")}',
])
def test_the_check_sees_every_kind_of_read(source):
    assert env_reads(source)


def test_the_check_lets_a_child_process_environment_and_other_variables_be():
    assert env_reads('import os\nos.environ.update(dbt_env())\nenv = {**os.environ, "A": "1"}\n'
                     'os.environ["TOKENWATCH_DBT_TARGET"] = "local"\n'
                     'os.environ.get("PYTHONUNBUFFERED")\nos.environ.get("HOME")') == []


# -- reading settings -----------------------------------------------------------------------


def test_defaults_and_a_fresh_read_after_each_change(env):
    s = config.settings()
    assert (s.env, s.max_body_bytes, s.audit_bucket, s.dd_site) == (
        "local", 524288, "tokenwatch-audit", "datadoghq.com")
    assert s.pg_dsn is None and s.api_keys == frozenset()
    env.setenv("TOKENWATCH_ENV", "prod")
    env.setenv("TOKENWATCH_API_KEYS", " a, b,,c ")
    assert config.env_name() == "prod"
    assert config.api_keys() == {"a", "b", "c"}
    env.delenv("TOKENWATCH_ENV")
    assert config.env_name() == "local"


def test_a_bad_environment_name_raises_when_read_and_only_then(env):
    env.setenv("TOKENWATCH_ENV", "x")
    s = config.settings()  # building the object does not fail ...
    assert s.max_body_bytes == 524288  # ... nor reading another setting
    with pytest.raises(ValueError) as err:
        getattr(s, "env")  # noqa: B009 (reading is what raises)
    assert str(err.value) == "TOKENWATCH_ENV must be 'local' or 'prod', got 'x'"
    env.setenv("TOKENWATCH_ENV", "")  # an empty name is an error, never silently local
    with pytest.raises(ValueError, match="TOKENWATCH_ENV must be 'local' or 'prod', got ''"):
        config.env_name()


@pytest.mark.parametrize(("raw", "message"), [
    ("abc", "TOKENWATCH_MAX_BODY_BYTES must be an integer, got 'abc'"),
    ("1.5", "TOKENWATCH_MAX_BODY_BYTES must be an integer, got '1.5'"),
    ("0", "TOKENWATCH_MAX_BODY_BYTES must be at least 1, got 0"),
])
def test_a_bad_integer_reads_as_ever(env, raw, message):
    env.setenv("TOKENWATCH_MAX_BODY_BYTES", raw)
    with pytest.raises(ValueError) as err:
        config.max_body_bytes()
    assert str(err.value) == message


def test_integers_blank_values_and_other_checks(env):
    env.setenv("TOKENWATCH_MAX_BODY_BYTES", " ")
    env.setenv("DD_DOGSTATSD_PORT", "")
    env.setenv("TOKENWATCH_STREAM_SHARDS", "2")
    env.setenv("TOKENWATCH_CHECKPOINT_RETENTION_DAYS", "30")
    env.setenv("TOKENWATCH_PG_DSN", "")
    env.setenv("TOKENWATCH_READER_PG_DSN", "  host=db user=r  ")
    s = config.settings()
    assert (s.max_body_bytes, s.dd_dogstatsd_port, s.stream_shards,
            s.checkpoint_retention_days) == (524288, 8125, 2, 30)
    assert s.pg_dsn is None and config.secret(s.reader_pg_dsn) == "host=db user=r"
    for var, raw, message in [
        ("TOKENWATCH_STREAM_SHARDS", "0", "TOKENWATCH_STREAM_SHARDS must be a positive integer, "
                                          "got '0'"),
        ("TOKENWATCH_CHECKPOINT_RETENTION_DAYS", "7y", "TOKENWATCH_CHECKPOINT_RETENTION_DAYS "
                                                      "must be an integer, got '7y'"),
        ("DD_DOGSTATSD_PORT", "statsd", "DD_DOGSTATSD_PORT must be an integer, got 'statsd'"),
        ("TOKENWATCH_WAREHOUSE", "oracle", "TOKENWATCH_WAREHOUSE must be one of duckdb, "
                                           "postgres, snowflake, got 'oracle'"),
        ("DD_SITE", "https://evil.example/", "DD_SITE must be a Datadog site such as "
                                             "datadoghq.eu, got 'https://evil.example/'"),
        ("TOKENWATCH_DD_API_HOST", "intake:8080", "TOKENWATCH_DD_API_HOST must be an http(s) "
                                                  "URL, got 'intake:8080'"),
        ("TOKENWATCH_PARTITIONS_START", "next monday", "TOKENWATCH_PARTITIONS_START must be a "
                                                       "day (YYYY-MM-DD), got 'next monday'"),
    ]:
        env.setenv(var, raw)
        name = next(n for n, v in config.env_vars().items() if v == var)
        with pytest.raises(ValueError) as err:
            getattr(config.settings(), name)
        assert str(err.value) == message
        env.delenv(var)


def test_the_record_time_window(env):
    now = datetime(2026, 5, 1, tzinfo=UTC)
    assert config.record_time_window(now) == (datetime(2000, 1, 1, tzinfo=UTC),
                                              datetime(2026, 5, 2, tzinfo=UTC))
    env.setenv("TOKENWATCH_TIMESTAMP_MIN", "2020-01-01T00:00:00")  # no offset: UTC
    env.setenv("TOKENWATCH_TIMESTAMP_MAX_AHEAD_S", "60")
    assert config.record_time_window(now) == (datetime(2020, 1, 1, tzinfo=UTC),
                                              datetime(2026, 5, 1, 0, 1, tzinfo=UTC))
    env.setenv("TOKENWATCH_TIMESTAMP_MAX_AHEAD_S", "-1")
    with pytest.raises(ValueError, match="TOKENWATCH_TIMESTAMP_MAX_AHEAD_S must be a whole "
                                         "number of seconds, got '-1'"):
        config.record_time_window(now)
    env.delenv("TOKENWATCH_TIMESTAMP_MAX_AHEAD_S")
    env.setenv("TOKENWATCH_TIMESTAMP_MIN", "yesterday")
    with pytest.raises(ValueError, match="TOKENWATCH_TIMESTAMP_MIN is not an ISO-8601 "
                                         "timestamp: 'yesterday'"):
        config.record_time_window(now)
    env.setenv("TOKENWATCH_TIMESTAMP_MIN", "2027-01-01T00:00:00Z")
    with pytest.raises(ValueError, match="is not before now plus"):
        config.record_time_window(now)


def test_prod_needs_chain_keys_and_keys_must_be_well_formed(env):
    assert config.chain_keys() == (config.LOCAL_CHAIN_KEY_ID,
                                   {config.LOCAL_CHAIN_KEY_ID: config.LOCAL_CHAIN_KEY})
    env.setenv("TOKENWATCH_ENV", "prod")
    with pytest.raises(ValueError, match="TOKENWATCH_CHAIN_KEYS is not set"):
        config.chain_keys()
    env.setenv("TOKENWATCH_CHAIN_KEYS", "  ")  # blank is unset
    with pytest.raises(ValueError, match="TOKENWATCH_CHAIN_KEYS is not set"):
        config.chain_keys()
    env.setenv("TOKENWATCH_CHAIN_KEYS", "k1:short")
    with pytest.raises(ValueError, match="must be id:secret pairs"):
        config.chain_keys()
    env.setenv("TOKENWATCH_CHAIN_KEYS", "k1:0123456789abcdef, k2:fedcba9876543210")
    assert config.chain_keys() == ("k2", {"k1": b"0123456789abcdef", "k2": b"fedcba9876543210"})
    env.setenv("TOKENWATCH_CHAIN_KEY_ID", "k1")
    assert config.chain_keys()[0] == "k1"
    env.setenv("TOKENWATCH_CHAIN_KEY_ID", "k3")
    with pytest.raises(ValueError, match="TOKENWATCH_CHAIN_KEY_ID 'k3' is not in"):
        config.chain_keys()


def test_secrets_do_not_print(env):
    env.setenv("TOKENWATCH_PG_DSN", "host=db user=admin password=hunter2-admin")
    env.setenv("DD_API_KEY", "dd-secret-key")
    env.setenv("TOKENWATCH_API_KEYS", "write-secret")
    env.setenv("TOKENWATCH_CHAIN_KEYS", "k1:chain-secret-0123456789")
    s = config.settings()
    for text in (repr(s), str(s), s.model_dump_json()):
        for secret in ("hunter2-admin", "dd-secret-key", "write-secret", "chain-secret"):
            assert secret not in text
    assert config.pg_dsn() == "host=db user=admin password=hunter2-admin"
    assert config.api_keys() == {"write-secret"}


def test_home_is_created_private(env, tmp_path):
    env.setenv("TOKENWATCH_HOME", str(tmp_path / "state"))
    path = config.home()
    assert path == tmp_path / "state" and path.stat().st_mode & 0o777 == 0o700
