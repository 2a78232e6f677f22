"""deploy/snowflake/bootstrap.sql: run on fakesnow as far as fakesnow goes, and held to least
privilege on its parsed statements where fakesnow cannot tell.

fakesnow (DuckDB underneath, server mode: the session's ``fakesnow_server``) creates databases
and schemas and accepts ``use role``; it has no virtual warehouses, roles, users or privileges,
and does not parse managed access. Those statements fail there, each kind named with why in
``FAKESNOW_CANNOT_RUN``. The script is run twice, statement by statement: exactly those kinds
must fail (a kind that starts to run, or a new kind that fails, makes the test fail until the
list is updated), every other statement must succeed both times, and the database and every
schema must exist afterwards.

What execution cannot check, who may do what, is checked on the grants parsed from the script:
each role's privileges are exactly ``EXPECTED_PRIVILEGES`` (a second list a reviewer reads), and
the rules behind them hold whatever that list says: analysts see ``ANALYTICS_PUBLISHED`` only,
compliance ``ANALYTICS_COMPLIANCE`` only, the loader nothing outside ``RAW``, only the loader
writes, no ownership but TRANSFORMER's of its schemas, no ACCOUNTADMIN or account privilege,
future grants mirror the current ones, users are key-pair service users, no secret in the file.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from ingestion import raw_schema
from quality import verdicts
from reporting import published
from reporting.api import access_log
from tokenwatch import config

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "snowflake" / "bootstrap.sql"

_DEFAULTS = config.Settings.model_fields
DB = _DEFAULTS["snowflake_database"].default.upper()  # TOKENWATCH_SNOWFLAKE_DATABASE


def _schema(name: str) -> str:
    return f"{DB}.{name.upper()}"


RAW = _schema(_DEFAULTS["raw_schema"].default)  # TOKENWATCH_RAW_SCHEMA
QUALITY = _schema(verdicts.SCHEMA)
REPORTS = _schema(access_log.SCHEMA)
PUBLISHED = _schema(published.SCHEMA)
DBT_BASE = _DEFAULTS["dbt_schema"].default  # TOKENWATCH_DBT_SCHEMA


def _dbt_schemas() -> set[str]:
    """dbt's schemas: the base schema plus every ``+schema`` of dbt_project.yml (dbt's default
    generate_schema_name: ``<base>_<custom>``)."""
    found: set[str] = set()

    def walk(node) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "+schema":
                    found.add(_schema(f"{DBT_BASE}_{value}"))
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(yaml.safe_load((ROOT / "dbt_project" / "dbt_project.yml").read_text()))
    return found


DBT_SCHEMAS = _dbt_schemas()
WALLET, LIFECYCLE, COMPLIANCE_MARTS = (_schema(f"{DBT_BASE}_{s}")
                                       for s in ("wallet", "lifecycle", "compliance"))
#: The schemas TRANSFORMER owns: dbt's, the gate's verdicts, the analyst-facing copy.
TRANSFORMER_SCHEMAS = DBT_SCHEMAS | {QUALITY, PUBLISHED}
SCHEMAS = TRANSFORMER_SCHEMAS | {RAW, REPORTS}
#: The roles every Snowflake account has before the script runs.
SYSTEM_ROLES = {"ACCOUNTADMIN", "SECURITYADMIN", "SYSADMIN", "USERADMIN", "ORGADMIN", "PUBLIC"}

#: What fakesnow cannot run, by kind of statement (``kind()``), and why. Nothing of these is
#: checked by execution; the grants are checked by the static tests below.
FAKESNOW_CANNOT_RUN = {
    "create role": "fakesnow has no roles (DuckDB has none): a parser error",
    "create user": "fakesnow has no users to create: a parser error",
    "create warehouse": "fakesnow has no virtual warehouses (one fake FAKESNOW_WAREHOUSE): a "
                        "parser error",
    "alter schema": "fakesnow cannot parse ENABLE MANAGED ACCESS (it has no privileges to "
                    "manage)",
    "grant": "fakesnow has no privileges: every GRANT (role, object, all/future, ownership) is "
             "a parser error",
}


# -- the script, parsed -------------------------------------------------------------------------

def split_statements(text: str) -> list[str]:
    """The statements of a SQL script: comments (``--`` to the end of the line, ``/* */``)
    removed, split on ``;`` outside quotes ('...', "...", $$...$$), whitespace outside quotes
    collapsed to one space."""
    statements: list[str] = []
    current: list[str] = []
    i, n = 0, len(text)

    def space() -> None:
        if current and current[-1] != " ":
            current.append(" ")

    while i < n:
        c = text[i]
        if text.startswith("--", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                raise ValueError("a /* comment is not closed")
            space()
            i = end + 2
        elif text.startswith("$$", i):
            end = text.find("$$", i + 2)
            if end < 0:
                raise ValueError("a $$ string is not closed")
            current.append(text[i:end + 2])
            i = end + 2
        elif c in "'\"":
            j = i + 1
            while True:
                if j >= n:
                    raise ValueError(f"a {c} quote is not closed")
                if c == "'" and text[j] == "\\":
                    j += 2
                elif text[j] == c and j + 1 < n and text[j + 1] == c:
                    j += 2  # '' (or "") inside the quotes
                elif text[j] == c:
                    break
                else:
                    j += 1
            current.append(text[i:j + 1])
            i = j + 1
        elif c == ";":
            statements.append("".join(current).strip())
            current = []
            i += 1
        elif c.isspace():
            space()
            i += 1
        else:
            current.append(c)
            i += 1
    statements.append("".join(current).strip())
    return [s for s in statements if s]


def kind(statement: str) -> str:
    """``grant`` for every grant, else the statement's first two words (``create schema``)."""
    words = statement.lower().split()
    return "grant" if words[0] == "grant" else " ".join(words[:2])


_NAME = r"[A-Za-z_][A-Za-z0-9_$]*"
_QUALIFIED = rf"{_NAME}(?:\.{_NAME})*"
_PRIVILEGES = r"[a-z][a-z ,]*?"
_GRANT_FORMS = (  # (form, regex): the only grants the checks below understand
    ("role", rf"grant role (?P<target>{_NAME}) to (?P<kind>role|user) (?P<grantee>{_NAME})"),
    ("ownership", rf"grant ownership on (?P<on>schema) (?P<target>{_QUALIFIED}) "
                  rf"to (?P<kind>role) (?P<grantee>{_NAME}) copy current grants"),
    ("bulk", rf"grant (?P<privileges>{_PRIVILEGES}) on (?P<scope>all|future) "
             rf"(?P<objects>tables|views) in schema (?P<target>{_QUALIFIED}) "
             rf"to (?P<kind>role) (?P<grantee>{_NAME})"),
    ("object", rf"grant (?P<privileges>{_PRIVILEGES}) on (?P<on>warehouse|database|schema) "
               rf"(?P<target>{_QUALIFIED}) to (?P<kind>role) (?P<grantee>{_NAME})"),
)


@dataclass(frozen=True)
class Grant:
    form: str  # role, ownership, bulk, object
    privileges: tuple[str, ...]  # upper case: USAGE, CREATE TABLE, OWNERSHIP, ROLE
    on: str  # WAREHOUSE, DATABASE, SCHEMA, ALL TABLES, FUTURE VIEWS, ROLE
    target: str  # upper case; a schema as DATABASE.SCHEMA when written so
    grantee_kind: str  # ROLE or USER
    grantee: str
    statement: str


def parse_grant(statement: str) -> Grant:
    for form, pattern in _GRANT_FORMS:
        m = re.fullmatch(pattern, statement, flags=re.IGNORECASE)
        if not m:
            continue
        groups = m.groupdict()
        if form == "role":
            privileges, on = ("ROLE",), "ROLE"
        elif form == "ownership":
            privileges, on = ("OWNERSHIP",), "SCHEMA"
        else:
            privileges = tuple(" ".join(p.split()).upper()
                               for p in groups["privileges"].split(","))
            on = (f"{groups['scope']} {groups['objects']}" if form == "bulk"
                  else groups["on"]).upper()
        if form != "ownership" and "OWNERSHIP" in privileges:
            break  # ownership of a schema only, with its grants kept (the ownership form)
        return Grant(form, privileges, on, groups["target"].upper(), groups["kind"].upper(),
                     groups["grantee"].upper(), statement)
    raise ValueError(f"not a grant form the checks understand: {statement}")


def _options(statement: str) -> dict[str, str]:
    """``key = value`` options of a create statement, keys lower case, values as written."""
    return {k.lower(): v for k, v in re.findall(r"(\w+)\s*=\s*('[^']*'|[\w.]+)", statement)}


@dataclass(frozen=True)
class Script:
    text: str
    statements: tuple[str, ...]

    def created(self, what: str) -> dict[str, str]:
        """Name (upper case) -> statement of every ``create <what> if not exists <name>``."""
        found = {}
        for s in self.statements:
            m = re.match(rf"create {what} if not exists ({_QUALIFIED})", s, flags=re.IGNORECASE)
            if m:
                found[m.group(1).upper()] = s
        return found

    @property
    def grants(self) -> list[Grant]:
        """The grants parsed; one of no known form is left out here and fails
        test_every_grant_has_a_form_the_checks_understand."""
        found = []
        for s in self.statements:
            if kind(s) == "grant":
                try:
                    found.append(parse_grant(s))
                except ValueError:
                    pass
        return found

    def privileges(self) -> dict[str, set[tuple[str, str, str]]]:
        """Role -> its own ``(privilege, on, target)``, role grants left out."""
        found: dict[str, set[tuple[str, str, str]]] = defaultdict(set)
        for g in self.grants:
            if g.form != "role":
                for p in g.privileges:
                    found[g.grantee].add((p, g.on, g.target))
        return found

    def role_grants(self) -> set[tuple[str, str, str]]:
        """``(role, ROLE|USER, grantee)`` of every role grant."""
        return {(g.target, g.grantee_kind, g.grantee) for g in self.grants if g.form == "role"}


def load_script(text: str | None = None) -> Script:
    text = SCRIPT.read_text() if text is None else text
    return Script(text, tuple(split_statements(text)))


@pytest.fixture(scope="module")
def script() -> Script:
    return load_script()


# -- the least-privilege contract ---------------------------------------------------------------

def _usage(on: str, target: str) -> tuple[str, str, str]:
    return ("USAGE", on, target)


def _reads(schema: str, views: bool = True) -> set[tuple[str, str, str]]:
    """USAGE on the schema and SELECT on its tables (and views), now and future."""
    objects = ("TABLES", "VIEWS") if views else ("TABLES",)
    return {_usage("SCHEMA", schema)} | {("SELECT", f"{scope} {o}", schema)
                                         for scope in ("ALL", "FUTURE") for o in objects}


#: Each role's own privileges, exactly (role grants in EXPECTED_ROLE_GRANTS).
EXPECTED_PRIVILEGES: dict[str, set[tuple[str, str, str]]] = {
    "LOADER": {_usage("WAREHOUSE", "LOADING"), _usage("DATABASE", DB), _usage("SCHEMA", RAW),
               ("CREATE TABLE", "SCHEMA", RAW), ("CREATE STAGE", "SCHEMA", RAW)}
              | {(p, f"{scope} TABLES", RAW) for p in ("SELECT", "INSERT", "UPDATE", "DELETE")
                 for scope in ("ALL", "FUTURE")},
    "TRANSFORMER": {_usage("WAREHOUSE", "TRANSFORMING"), _usage("DATABASE", DB),
                    ("CREATE SCHEMA", "DATABASE", DB)} | _reads(RAW, views=False)
                   | {("OWNERSHIP", "SCHEMA", s) for s in TRANSFORMER_SCHEMAS},
    "PIPELINE": _reads(REPORTS, views=False),
    "REPORTER": {_usage("WAREHOUSE", "REPORTING"), _usage("DATABASE", DB),
                 ("CREATE TABLE", "SCHEMA", REPORTS), _usage("SCHEMA", REPORTS)}
                | _reads(WALLET) | _reads(LIFECYCLE) | _reads(COMPLIANCE_MARTS)
                | _reads(QUALITY, views=False),
    "ANALYST": {_usage("WAREHOUSE", "REPORTING"), _usage("DATABASE", DB)} | _reads(PUBLISHED),
    "COMPLIANCE": {_usage("WAREHOUSE", "REPORTING"), _usage("DATABASE", DB)}
                  | _reads(COMPLIANCE_MARTS),
}
ROLES = set(EXPECTED_PRIVILEGES)
EXPECTED_ROLE_GRANTS = ({(role, "ROLE", "SYSADMIN") for role in ROLES}
                        | {("LOADER", "ROLE", "PIPELINE"), ("TRANSFORMER", "ROLE", "PIPELINE")}
                        | {(role, "USER", f"TOKENWATCH_{role}")
                           for role in ("LOADER", "PIPELINE", "REPORTER")})
#: Every privilege the script may grant; anything else (ALL, MANAGE GRANTS, CREATE DATABASE,
#: MONITOR, OPERATE, TRUNCATE, ...) fails test_only_these_privileges.
ALLOWED_PRIVILEGES = {"USAGE", "SELECT", "INSERT", "UPDATE", "DELETE", "CREATE TABLE",
                      "CREATE STAGE", "CREATE SCHEMA", "OWNERSHIP", "ROLE"}
WRITES = {"INSERT", "UPDATE", "DELETE"}


def _diff(found: set, expected: set) -> str:
    return (f"granted but not expected: {sorted(found - expected)}; "
            f"expected but not granted: {sorted(expected - found)}")


# -- the parser ---------------------------------------------------------------------------------

def test_split_statements_strips_comments_and_keeps_quotes():
    text = """
        -- a comment; with a semicolon
        create schema if not exists A.B comment = 'it''s; -- not a comment';  /* block; */
        grant usage   on schema A.B
          to role R;  -- trailing
        select "odd;name", $$x;y$$ from t
    """
    assert split_statements(text) == [
        "create schema if not exists A.B comment = 'it''s; -- not a comment'",
        "grant usage on schema A.B to role R",
        'select "odd;name", $$x;y$$ from t',
    ]
    with pytest.raises(ValueError):
        split_statements("select 'open")


def test_parse_grant_reads_each_form():
    assert parse_grant("grant select, insert on future tables in schema D.S to role r") == Grant(
        "bulk", ("SELECT", "INSERT"), "FUTURE TABLES", "D.S", "ROLE", "R",
        "grant select, insert on future tables in schema D.S to role r")
    assert parse_grant("grant usage, create schema on database D to role R").privileges == (
        "USAGE", "CREATE SCHEMA")
    assert parse_grant("grant role A to user U").on == "ROLE"
    for unknown in ("grant all privileges on database D to role R with grant option",
                    "grant ownership on database D to role R",
                    "grant create database on account to role R"):
        with pytest.raises(ValueError):
            parse_grant(unknown)


# -- static: what fakesnow cannot check ---------------------------------------------------------

def test_every_grant_has_a_form_the_checks_understand(script):
    unknown = []
    for s in script.statements:
        if kind(s) == "grant":
            try:
                parse_grant(s)
            except ValueError:
                unknown.append(s)
    assert unknown == [], "grants the least-privilege checks cannot read (with grant option, "\
                          f"on account, ownership of a database, ...): {unknown}"


@pytest.mark.parametrize("role", sorted(ROLES))
def test_each_role_has_exactly_its_privileges(script, role):
    found = script.privileges().get(role, set())
    assert found == EXPECTED_PRIVILEGES[role], f"{role}: {_diff(found, EXPECTED_PRIVILEGES[role])}"


def test_only_the_roles_of_the_contract_get_privileges(script):
    assert set(script.privileges()) <= ROLES
    assert set(script.created("role")) == ROLES


def test_role_hierarchy_rolls_up_to_sysadmin_and_nowhere_else(script):
    found = script.role_grants()
    assert found == EXPECTED_ROLE_GRANTS, _diff(found, EXPECTED_ROLE_GRANTS)
    to_roles = {(role, grantee) for role, kind_, grantee in found if kind_ == "ROLE"}
    # a system role is never granted to ours, ours only to SYSADMIN among the system roles
    assert not {role for role, _ in to_roles} & SYSTEM_ROLES
    assert {g for _, g in to_roles} & SYSTEM_ROLES == {"SYSADMIN"}
    # every role reaches SYSADMIN
    parents = defaultdict(set)
    for role, grantee in to_roles:
        parents[role].add(grantee)

    def reaches(role: str, seen=()) -> bool:
        return "SYSADMIN" in parents[role] or any(
            reaches(p, (*seen, role)) for p in parents[role] if p not in seen)

    assert [r for r in ROLES if not reaches(r)] == []


def test_only_these_privileges_and_no_account_power(script):
    granted = {p for g in script.grants for p in g.privileges}
    assert granted <= ALLOWED_PRIVILEGES, f"not allowed: {granted - ALLOWED_PRIVILEGES}"
    for s in script.statements:
        assert not re.search(r"\b(accountadmin|orgadmin)\b", s, re.IGNORECASE), s
        assert not re.search(r"\bon account\b|\ball privileges\b|\bgrant all\b|"
                             r"\bwith grant option\b|\bmanage grants\b", s, re.IGNORECASE), s
    used = {s.split()[2].upper() for s in script.statements if kind(s) == "use role"}
    assert used <= {"SECURITYADMIN", "SYSADMIN", "USERADMIN"}


def test_ownership_only_transformer_of_its_schemas(script):
    owned = [g for g in script.grants if "OWNERSHIP" in g.privileges]
    assert {g.grantee for g in owned} == {"TRANSFORMER"}
    assert {g.target for g in owned} == TRANSFORMER_SCHEMAS
    assert not {g.target for g in owned} & {RAW, REPORTS, DB}


def test_analyst_reads_the_published_schema_only(script):
    for privilege, on, target in script.privileges()["ANALYST"]:
        if on in ("WAREHOUSE", "DATABASE"):
            assert privilege == "USAGE", (privilege, on, target)
        else:
            assert target == PUBLISHED and privilege in ("USAGE", "SELECT"), (
                f"ANALYST may read {PUBLISHED} only, never a build schema: "
                f"{privilege} on {on} {target}")
    assert {("SELECT", "ALL TABLES", PUBLISHED), ("SELECT", "FUTURE TABLES", PUBLISHED)} <= (
        script.privileges()["ANALYST"])
    # and nobody else reads it (TRANSFORMER owns it)
    readers = {role for role, found in script.privileges().items()
               for _, _, target in found if target == PUBLISHED}
    assert readers == {"ANALYST", "TRANSFORMER"}


def test_compliance_reads_the_compliance_marts_only(script):
    for privilege, on, target in script.privileges()["COMPLIANCE"]:
        if on in ("WAREHOUSE", "DATABASE"):
            assert privilege == "USAGE", (privilege, on, target)
        else:
            assert target == COMPLIANCE_MARTS and privilege in ("USAGE", "SELECT"), (
                f"COMPLIANCE may read {COMPLIANCE_MARTS} only: {privilege} on {on} {target}")
    assert ("SELECT", "FUTURE TABLES", COMPLIANCE_MARTS) in script.privileges()["COMPLIANCE"]


def test_loader_gets_nothing_outside_raw(script):
    for privilege, on, target in script.privileges()["LOADER"]:
        if on in ("WAREHOUSE", "DATABASE"):
            assert privilege == "USAGE", f"LOADER: {privilege} on {on} {target}"
        else:
            assert target == RAW, f"LOADER outside {RAW}: {privilege} on {on} {target}"


def test_only_the_loader_writes_and_creates_only_where_it_must(script):
    for role, found in script.privileges().items():
        for privilege, on, target in found:
            if privilege in WRITES:
                assert (role, target) == ("LOADER", RAW), f"{role} writes {on} {target}"
            if privilege == "CREATE SCHEMA":
                assert (role, on, target) == ("TRANSFORMER", "DATABASE", DB), (role, target)
            if privilege in ("CREATE TABLE", "CREATE STAGE"):
                assert (role, target) in {("LOADER", RAW), ("REPORTER", REPORTS)}, (
                    f"{role}: {privilege} on {target}")


def test_reporter_reads_marts_and_verdicts_never_raw_or_the_build_layers(script):
    allowed = {WALLET, LIFECYCLE, COMPLIANCE_MARTS, QUALITY, REPORTS}
    for privilege, on, target in script.privileges()["REPORTER"]:
        if on in ("WAREHOUSE", "DATABASE"):
            assert privilege == "USAGE"
        else:
            assert target in allowed, f"REPORTER: {privilege} on {on} {target}"
            assert privilege in ("USAGE", "SELECT") or (privilege, target) == (
                "CREATE TABLE", REPORTS), f"REPORTER: {privilege} on {on} {target}"


def test_future_grants_mirror_current_grants(script):
    for role, found in script.privileges().items():
        for privilege, on, target in found:
            scope, _, objects = on.partition(" ")
            if scope in ("ALL", "FUTURE"):
                other = ("FUTURE" if scope == "ALL" else "ALL") + " " + objects
                assert (privilege, other, target) in found, (
                    f"{role} has {privilege} on {on} in {target} but not on {other}: the "
                    "tables created later (or now) would not match")


def test_grants_name_objects_the_script_creates(script):
    schemas, warehouses = set(script.created("schema")), set(script.created("warehouse"))
    databases = set(script.created("database"))
    for g in script.grants:
        if g.form == "role":
            assert g.target in ROLES
            if g.grantee_kind == "USER":
                assert g.grantee in script.created("user")
            continue
        assert g.grantee in ROLES, g.statement
        where = {"WAREHOUSE": warehouses, "DATABASE": databases}.get(g.on, schemas)
        assert g.target in where, f"{g.target} is not created by the script: {g.statement}"


def test_schemas_database_and_names_are_the_projects(script):
    assert set(script.created("database")) == {DB}
    assert set(script.created("schema")) == SCHEMAS, _diff(set(script.created("schema")),
                                                           SCHEMAS)
    assert RAW == _schema(raw_schema.SCHEMA)  # ingestion writes where dbt's sources read
    # dbt's profile defaults: the role and warehouse the script creates
    profile = (ROOT / "dbt_project" / "profiles.yml").read_text()
    for var, created in (("ROLE", script.created("role")),
                         ("WAREHOUSE", script.created("warehouse"))):
        default = re.search(rf"env_var\('TOKENWATCH_SNOWFLAKE_{var}', '(\w+)'\)", profile)
        assert default and default.group(1).upper() in created, var


def test_warehouses_are_xsmall_and_suspend_after_a_minute(script):
    warehouses = script.created("warehouse")
    assert set(warehouses) == {"LOADING", "TRANSFORMING", "REPORTING"}
    for name, statement in warehouses.items():
        options = {k: v.lower().strip("'") for k, v in _options(statement).items()}
        assert options["warehouse_size"] in ("xsmall", "x-small"), name
        assert (options["auto_suspend"], options["auto_resume"],
                options["initially_suspended"]) == ("60", "true", "true"), name


def test_users_are_key_pair_service_users_with_one_role(script):
    users = script.created("user")
    assert set(users) == {"TOKENWATCH_LOADER", "TOKENWATCH_PIPELINE", "TOKENWATCH_REPORTER"}
    granted = script.role_grants()
    for name, statement in users.items():
        options = {k: v.upper() for k, v in _options(statement).items()}
        assert options.get("type") == "SERVICE", f"{name}: TYPE = SERVICE signs in by key only"
        assert "password" not in statement.lower()
        roles = {role for role, kind_, grantee in granted if kind_ == "USER" and grantee == name}
        assert roles == {options["default_role"]}, name
        role = options["default_role"]
        inherited = {r for r, k, g in granted if k == "ROLE" and g == role} | {role}
        assert any(("USAGE", "WAREHOUSE", options["default_warehouse"]) in
                   script.privileges().get(r, set()) for r in inherited), name


def test_nothing_secret_in_the_file(script):
    text = script.text
    assert not re.search(r"password\s*=", text, re.IGNORECASE)
    assert not re.search(r"-----BEGIN|PRIVATE KEY-----|private_key\w*\s*=", text, re.IGNORECASE)
    # the public key appears as a placeholder, in a comment only
    for line in text.splitlines():
        if re.search(r"rsa_public_key", line, re.IGNORECASE):
            assert line.lstrip().startswith("--") and "'<" in line, line
    assert not any(re.search(r"rsa_public_key|password", s, re.IGNORECASE)
                   for s in script.statements)


def test_every_statement_can_run_again(script):
    for s in script.statements:
        lower = s.lower()
        assert not re.match(r"(drop|revoke|truncate|delete|create or replace)\b", lower), s
        if lower.startswith("create "):
            assert re.match(r"create \w+ if not exists ", lower), s
        if lower.startswith("grant ownership"):
            assert lower.endswith("copy current grants"), s


# -- executed on fakesnow -----------------------------------------------------------------------

@dataclass
class Run:
    database: str
    statements: list[str]
    failed: list[list[tuple[str, str]]]  # per pass: (statement, first line of the error)
    schemas: list[set[str]]  # per pass: the schemas found after it
    databases: set[str]


@pytest.fixture(scope="module")
def fakesnow_run(fakesnow_server: dict) -> Run:
    """The script run twice on a database of its own on the session's fakesnow server (the
    database name replaced: other tests share the server)."""
    import snowflake.connector

    logging.getLogger("fakesnow").setLevel(logging.CRITICAL)
    logging.getLogger("uvicorn").setLevel(logging.WARNING)
    database = f"TOKENWATCH_BOOTSTRAP_{uuid.uuid4().hex[:8].upper()}"
    text, replaced = re.subn(rf"\b{DB}\b", database, SCRIPT.read_text())
    assert replaced > 10
    statements = split_statements(text)
    run = Run(database, statements, [], [], set())
    conn = snowflake.connector.connect(**fakesnow_server)
    try:
        cur = conn.cursor()
        for _ in range(2):
            failed = []
            for statement in statements:
                try:
                    cur.execute(statement)
                except snowflake.connector.errors.ProgrammingError as error:
                    failed.append((statement, str(error).splitlines()[0]))
            run.failed.append(failed)
            cur.execute(f"select schema_name from {database}.information_schema.schemata")
            run.schemas.append({r[0].upper() for r in cur.fetchall()})
        cur.execute("select database_name from information_schema.databases")
        run.databases = {r[0].upper() for r in cur.fetchall()}
    finally:  # no drop: fakesnow cannot drop a database; it goes with the session's server
        conn.close()
    return run


def test_fakesnow_runs_every_statement_it_supports(fakesnow_run):
    for number, failed in enumerate(fakesnow_run.failed, 1):
        unexpected = [(s, e) for s, e in failed if kind(s) not in FAKESNOW_CANNOT_RUN]
        assert unexpected == [], f"run {number}: statements fakesnow should run failed: "\
                                 f"{unexpected}"
    ran = [s for s in fakesnow_run.statements if kind(s) not in FAKESNOW_CANNOT_RUN]
    assert {kind(s) for s in ran} == {"use role", "create database", "create schema"}


def test_fakesnow_cannot_run_exactly_the_declared_kinds(fakesnow_run):
    """Each kind in FAKESNOW_CANNOT_RUN fails on fakesnow, every statement of it, and no other
    kind fails: the list of what execution does not check is exactly what was skipped."""
    declared = [s for s in fakesnow_run.statements if kind(s) in FAKESNOW_CANNOT_RUN]
    for failed in fakesnow_run.failed:
        assert [s for s, _ in failed] == declared, (
            "statements of FAKESNOW_CANNOT_RUN's kinds that fakesnow ran now (move the kind "
            f"out of the list): {sorted(set(declared) - {s for s, _ in failed})}")
    assert {kind(s) for s in declared} == set(FAKESNOW_CANNOT_RUN)


def test_fakesnow_has_the_database_and_every_schema(fakesnow_run):
    assert fakesnow_run.database in fakesnow_run.databases
    expected = {name.split(".", 1)[1] for name in SCHEMAS}
    found = fakesnow_run.schemas[0] - {"INFORMATION_SCHEMA", "PUBLIC"}
    assert found == expected, _diff(found, expected)


def test_running_the_script_again_changes_nothing(fakesnow_run):
    first, second = fakesnow_run.schemas
    assert first == second
    assert [s for s, _ in fakesnow_run.failed[0]] == [s for s, _ in fakesnow_run.failed[1]]
