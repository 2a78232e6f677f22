"""PCI DSS v4.0.1 Requirement 10, mapped to what tokenwatch does: data, not prose in a template.

Each :class:`Requirement` says what the code does (and only that: the facts come from
``state_service/roles.py``, the migrations, ``chain.py``, ``checkpoints.py``, ``verify.py``,
the audit marts and the reports API's access log), where this pack holds the evidence (a section
and a file), and what remains the operator's to do. ``control`` names the pack's control whose
verdict (``controls.py``, from evidence) answers the requirement; ``None``: the pack cannot judge
it, the operator must.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Requirement:
    id: str
    title: str
    tokenwatch: str
    evidence: str
    operator: str
    control: str | None = None


S_CHAIN, S_RECON, S_EXC, S_ACCESS, S_REVIEW = (
    "section 2, chain verification", "section 3, reconciliation",
    "section 4, exceptions", "section 5, access records", "section 7, charts")

REQUIREMENTS: tuple[Requirement, ...] = (
    Requirement(
        "10.2.1.1", "Individual user access to cardholder data is logged",
        "tokenwatch holds no cardholder data: tokens are opaque references and card_ref is "
        "a reference, never a PAN (the PAN rule refuses one at the service and quarantines it "
        "at ingestion). Every read of the reports API is logged with the key's name.",
        f"{S_ACCESS}: access_records.csv; {S_EXC}: pan_like_value rows in exceptions.csv",
        "Log access to the systems that do hold cardholder data (the card vault, the issuer "
        "host); log direct SQL access to the warehouse and PostgreSQL (database audit logging).",
        "TW-PAN"),
    Requirement(
        "10.2.1.2", "All actions by administrative accounts are logged",
        "Not by tokenwatch. The state service's roles (state_service/roles.py) keep the "
        "application away from administration: tokenwatch_service may only SELECT and INSERT "
        "the log (UPDATE of four columns of tokens), tokenwatch_reader only SELECT; the admin "
        "runs migrations. Whatever an administrator changes in the log itself is found by the "
        "chain verification.",
        f"{S_CHAIN}: chain_findings.csv",
        "Log the database administrators' and superusers' sessions (pgaudit, RDS/Aurora "
        "database activity streams, Snowflake ACCESS_HISTORY) and the cloud console."),
    Requirement(
        "10.2.1.3", "All access to audit logs is logged",
        "Reads of the audit marts through the reports API are logged (who, when, what, status, "
        "rows). Direct SQL reads of the warehouse or of PostgreSQL are not logged by "
        "tokenwatch.",
        f"{S_ACCESS}: access_records.csv",
        "Enable the warehouse's and PostgreSQL's own access logging for the audit schemas.",
        "TW-ACCESS"),
    Requirement(
        "10.2.1.4", "Invalid logical access attempts are logged",
        "The reports API logs every refused request (who = anonymous or invalid, status 401 or "
        "403). The state service counts every 401 (a missing or unknown key) and 403 (a read "
        "key writing) at its front door into PostgreSQL's auth_failures, per minute, method, "
        "path (PAN-redacted) and client address; its role may add to it, not delete.",
        f"{S_ACCESS}: failed_authentications.csv, service_refused_requests.csv",
        "Keep PostgreSQL's own failed logins (log_connections, the server log) and the load "
        "balancer's logs; the client address is the one the service sees (behind a proxy, "
        "the proxy's)."),
    Requirement(
        "10.2.1.5", "Changes to identification and authentication credentials are logged",
        "Not by tokenwatch: API keys, read keys and role passwords come from the environment "
        "(TOKENWATCH_API_KEYS, TOKENWATCH_REPORT_KEYS, TOKENWATCH_*_PG_PASSWORD); the chain keys' "
        "ids are stored with every sealed row, so a key rotation shows in the log.",
        "none in this pack",
        "Keep credentials in a secrets manager that logs every change (AWS Secrets Manager with "
        "CloudTrail), and log role changes in PostgreSQL."),
    Requirement(
        "10.2.1.6", "Initialisation, stopping or pausing of the audit logs is logged",
        "The transition log cannot be paused by the application: it is append-only by trigger "
        "(migration 0001; UPDATE, DELETE and TRUNCATE refused) and the service role is neither "
        "its owner nor a superuser, so it cannot disable the trigger. A gap in the checkpoints' "
        "sequence is a finding (checkpoint_missing); days the review did not run show as "
        "unchecked.",
        f"{S_CHAIN}: chain_findings.csv; {S_REVIEW}: reviews.csv",
        "Alert on the checkpoint and review jobs not running (the compliance monitors), and log "
        "database restarts and configuration changes."),
    Requirement(
        "10.2.1.7", "Creation and deletion of system-level objects are logged",
        "Not by tokenwatch: no role but the schema's owner may run DDL (migration 0002 revokes "
        "CREATE from PUBLIC; the service and reader roles have none); the migrations are "
        "versioned in the repository.",
        "none in this pack",
        "Log DDL in PostgreSQL (log_statement = 'ddl' or pgaudit) and in the warehouse."),
    Requirement(
        "10.2.2", "Each event records user, type, date and time, success or failure, origin, "
        "identity of the affected data",
        "Every transition row carries the actor, the transition (from_state, to_state, "
        "reason_code), when it happened and when the database recorded it, the token it "
        "affects, the writer's idempotency key and its source location in the warehouse. A row "
        "is written only for a transition that succeeded; refused requests are answered and not "
        "stored. The actor is a role (issuer, cardholder, wallet, ...), not a person; the reports "
        "API's log names the key.",
        f"{S_RECON}: reconciliation_per_day.csv; the control counts rows lacking a field",
        "Map each API key to an accountable person or system; keep the refused requests' logs "
        "of the front door.",
        "10.2.2"),
    Requirement(
        "10.3.1", "Read access to audit log files is limited to those with a job-related need",
        "tokenwatch_reader has SELECT only; the compliance marts are granted to the compliance "
        "roles (TOKENWATCH_COMPLIANCE_ROLES) by dbt's grants; the reports API needs a read key.",
        "none in this pack (the grants are in state_service/roles.py and dbt_project)",
        "Decide who holds the compliance roles and the read keys, and review that list."),
    Requirement(
        "10.3.2", "Audit log files are protected from modification",
        "The log is append-only by trigger, the service role cannot UPDATE or DELETE it, and "
        "every row is hash-chained and sealed (HMAC under a key PostgreSQL never sees): a change "
        "by anyone, a superuser included, is found by the verification.",
        f"{S_CHAIN}: chain_findings.csv",
        "Keep the chain keys (TOKENWATCH_CHAIN_KEYS) out of the database administrators' reach.",
        "10.3.4"),
    Requirement(
        "10.3.3", "Audit log files are promptly backed up to a secure, central store that is "
        "difficult to alter",
        "Checkpoints of every sealed row go to S3 under Object Lock in COMPLIANCE mode "
        "(TOKENWATCH_CHECKPOINT_RETENTION_DAYS, default seven years) and are copied to the "
        "warehouse; ingestion copies the log to the warehouse every 15 minutes.",
        f"{S_CHAIN}: the number of checkpoints verified; {S_RECON}",
        "Provision the bucket with Object Lock, run `tokenwatch audit checkpoint` on a schedule, "
        "and back up PostgreSQL and the warehouse."),
    Requirement(
        "10.3.4", "File-integrity monitoring or change-detection on audit logs",
        "Two independent verifications: `tokenwatch audit verify` (chain, seals, checkpoints; "
        "state_service/verify.py) in PostgreSQL, and the audit marts (audit_token_chains, "
        "audit_token_transitions) in the warehouse. The control passes when both ran, found "
        "nothing and agree.",
        f"{S_CHAIN}: chain_findings.csv",
        "Run both daily and act on every finding.",
        "10.3.4"),
    Requirement(
        "10.4.1", "Audit logs are reviewed at least once daily",
        "The audit marts type every exception (audit_exceptions) with its evidence; this pack "
        "lists each with its rows. The control passes when the period has none.",
        f"{S_EXC}: exceptions.csv, tokens_active_past_expiry.csv, lifecycle_actions.csv",
        "A person reviews the exceptions each day and records what was done.",
        "TW-EXC"),
    Requirement(
        "10.4.1.1", "Automated mechanisms perform the audit log reviews",
        "The quality gate evaluates every day (its verdict per day in quality.gate_verdicts): "
        "passed, or withheld naming the failed checks. The control passes when every day of the "
        "period has a verdict.",
        f"{S_REVIEW}: reviews.csv, reviews_by_day.png",
        "Keep the compliance schedule running; the missed-review monitor alerts when it stops.",
        "10.4.1.1"),
    Requirement(
        "10.5.1", "Audit log history is retained for at least 12 months, the last three "
        "months immediately available",
        "This pack checks only its period: the audit marts hold every day of it. The transition "
        "log itself is never deleted by tokenwatch (append-only); the checkpoints are locked for "
        "TOKENWATCH_CHECKPOINT_RETENTION_DAYS.",
        f"{S_EXC}: exceptions_by_day.png (every day present)",
        "Keep 12 months in the warehouse (the retention asset checks watch it) and the last 90 "
        "days in its hot tier; Snowflake's time travel and fail-safe are not retention.",
        "10.5.1"),
    Requirement(
        "10.6", "Time-synchronisation: every event carries a consistent time",
        "Every transition carries recorded_at from the database clock (clock_timestamp() in the "
        "writing transaction), beside the writer's occurred_at; an occurred_at later than "
        "recorded_at beyond the allowed skew is an exception (event_time_after_recorded_at). "
        "The control passes when every row of the period has recorded_at and none is late.",
        f"{S_EXC}: exceptions.csv",
        "Synchronise the database servers' and writers' clocks with NTP (10.6.1-10.6.3).",
        "10.6"),
    Requirement(
        "10.7.2", "Failures of critical security control systems are detected, alerted and "
        "addressed promptly",
        "The quality gate withholds a day that fails a check and says why; the compliance "
        "monitors alert on a chain break, a missed daily review, a stale audit mart and a failed "
        "pack; a failed control in this pack is evidence, written either way.",
        f"{S_REVIEW}: reviews.csv; the summary's verdicts",
        "Route the monitors to an on-call rota, record each response (10.7.3)."),
)

#: The controls this pack judges from evidence (``controls.py``), in the summary's order: the
#: requirement they answer, or ``TW-`` for tokenwatch's own.
CONTROLS = {
    "10.2.1": "Every event logged reaches the warehouse: PostgreSQL, raw layer and marts agree "
              "per day, nothing read is dropped",
    "10.2.2": "Every transition carries its user (actor), type, times, origin and the token",
    "10.3.4": "Change detection: both chain verifications ran, found nothing and agree",
    "TW-EXC": "No audit exception in the period (the daily review's findings)",
    "TW-PAN": "No card number (PAN-like value) in the raw layer in the period",
    "10.4.1.1": "The automated review ran on every day of the period",
    "10.5.1": "The audit marts hold every day of the period",
    "10.6": "Every transition carries the database clock's time, none later than recorded",
    "TW-ACCESS": "The reports API's access log was found and read",
}
