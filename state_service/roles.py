"""Least privilege in PostgreSQL: the three roles, what each may do, and their DSNs.

* ``tokenwatch_owner`` (NOLOGIN) owns the schema's objects (tables, sequences, functions). No
  one logs in as it; migrations run as the admin and hand what they create to it.
* ``tokenwatch_service`` (LOGIN), the state service: SELECT and INSERT on
  ``token_state_transitions`` and ``tokens``, UPDATE on ``tokens`` only for
  :data:`TRANSITION_COLUMNS`, USAGE on the log's identity sequence, and SELECT, INSERT and
  UPDATE on ``auth_failures`` (the refused requests it counts per minute). Nothing else: no UPDATE,
  DELETE or TRUNCATE of the log, no DDL, not the owner (so it cannot disable the trigger), not
  a superuser (so it cannot set ``session_replication_role``).
* ``tokenwatch_reader`` (LOGIN), ingestion, the gate's reconciliation and ``tokenwatch audit
  verify``: SELECT on the schema's tables, nothing else.

``state_service.migrate`` creates the roles (cluster-wide, race-safe) and re-applies ownership
and grants from this module on every run, so the constants below are the one place the grants
are kept. Passwords are optional and come from the environment only
(``TOKENWATCH_SERVICE_PG_PASSWORD``, ``TOKENWATCH_READER_PG_PASSWORD``).

The application connects with its role by default: :func:`dsn_for` gives
``TOKENWATCH_SERVICE_PG_DSN`` / ``TOKENWATCH_READER_PG_DSN`` when set (on RDS, where the
application must never be the master user), else the admin DSN with the role as user
(:func:`role_dsn`).
"""

from __future__ import annotations

from collections.abc import Callable

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tokenwatch import config

OWNER = "tokenwatch_owner"
SERVICE = "tokenwatch_service"
READER = "tokenwatch_reader"
ROLES = (OWNER, SERVICE, READER)
LOGIN_ROLES = (SERVICE, READER)

#: The schema the migrations create their objects in (and the roles' search path resolves to).
SCHEMA = "public"
LOG_TABLE = "token_state_transitions"
TOKENS_TABLE = "tokens"
AUTH_FAILURES_TABLE = "auth_failures"
#: The legal (from_state, to_state) pairs, rewritten from lifecycle.py by every migrate run.
LIFECYCLE_TABLE = "lifecycle_transitions"

#: The columns of ``tokens`` a transition moves: the only ones the service may UPDATE.
#: THE ONE PLACE this list is kept. A migration that adds a column the service moves on a
#: transition (0003's hash-chain columns, say) adds the column in its SQL and its name here;
#: ``migrate`` re-grants from this tuple on every run. A column named here must exist.
TRANSITION_COLUMNS: tuple[str, ...] = ("state", "version", "last_hash", "updated_at")

#: Table-level privileges of the service role (column-level UPDATE: TRANSITION_COLUMNS).
SERVICE_TABLE_PRIVILEGES: dict[str, tuple[str, ...]] = {
    LOG_TABLE: ("SELECT", "INSERT"),
    TOKENS_TABLE: ("SELECT", "INSERT"),
    # refused requests, counted per minute (migration 0004): insert, and add to attempts
    AUTH_FAILURES_TABLE: ("SELECT", "INSERT", "UPDATE"),
    # the write functions (migration 0005) read the legal pairs with the caller's rights
    LIFECYCLE_TABLE: ("SELECT",),
}

#: The write functions (migration 0005, SECURITY INVOKER) the service may EXECUTE; nobody else
#: may (PUBLIC's default EXECUTE is revoked). Their argument types are in the signatures.
SERVICE_FUNCTIONS: tuple[str, ...] = (
    "tokenwatch_prepare_transition(text, text, text, text, text, text, text, timestamptz,"
    " text)",
    "tokenwatch_apply_transition(bigint, text, text, integer, text, text, text, text, text,"
    " text, text, text, text, text, timestamptz, timestamptz, text, text, text, text, text)",
    "tokenwatch_prepare_create(text, text, text, text, text, text, timestamptz, text, text)",
    "tokenwatch_apply_create(bigint, text, text, text, text, text, text, text, text,"
    " timestamptz, timestamptz, text, text, text, text, text, text)",
)

#: Each login role's settings (``tokenwatch.config.Settings``): its password and its DSN.
PASSWORD_SETTING = {SERVICE: "service_pg_password", READER: "reader_pg_password"}
DSN_SETTING = {SERVICE: "service_pg_dsn", READER: "reader_pg_dsn"}
#: ... and their environment variables (``TOKENWATCH_SERVICE_PG_PASSWORD``, ...).
PASSWORD_ENV = {role: config.env_var(name) for role, name in PASSWORD_SETTING.items()}
DSN_ENV = {role: config.env_var(name) for role, name in DSN_SETTING.items()}


def password(role: str) -> str | None:
    """The role's password from the environment, or None (unset or empty)."""
    return config.secret(getattr(config.settings(), PASSWORD_SETTING[role]))


def explicit_dsn(role: str, settings: config.Settings | None = None) -> str | None:
    """The role's own DSN from the environment (stripped), or None (unset or blank)."""
    return config.secret(getattr(settings or config.settings(), DSN_SETTING[role]))


def role_dsn(admin_dsn: str, role: str) -> str:
    """``admin_dsn`` (the admin's or the owner's connection string, keyword or URI form) with
    ``role`` as the user and the role's password from the environment, or no password (then
    libpq's passfile, or a trust rule, authenticates the role)."""
    if role not in LOGIN_ROLES:
        raise ValueError(f"{role!r} is not a login role; expected one of {LOGIN_ROLES}")
    params = {k: v for k, v in conninfo_to_dict(admin_dsn).items() if k != "password"}
    params["user"] = role
    secret = password(role)
    if secret:
        params["password"] = secret
    return make_conninfo(**params)


def dsn_for(role: str, admin_dsn: str | Callable[[], str]) -> str:
    """How ``role`` connects: its explicit DSN from the environment when set, else
    :func:`role_dsn` of ``admin_dsn`` (a string, or a function giving one: called only when
    no explicit DSN is set, so a deployment with one never resolves the admin's)."""
    explicit = explicit_dsn(role)
    if explicit:
        return explicit
    return role_dsn(admin_dsn() if callable(admin_dsn) else admin_dsn, role)


def privileges_summary() -> dict[str, list[str]]:
    """What each role may do, as ``tokenwatch db migrate`` prints it."""
    service = [f"{', '.join(p)} on {t}" for t, p in SERVICE_TABLE_PRIVILEGES.items()]
    service += [f"UPDATE ({', '.join(TRANSITION_COLUMNS)}) on {TOKENS_TABLE}",
                f"USAGE on {LOG_TABLE}'s identity sequence"]
    service += [f"EXECUTE on {fn.split('(')[0]}" for fn in SERVICE_FUNCTIONS]
    return {OWNER: [f"owns every table, sequence and function in schema {SCHEMA}"],
            SERVICE: service,
            READER: [f"SELECT on every table in schema {SCHEMA}"]}
