"""The transition log verified from both sides, and whether the two agree.

* PostgreSQL: ``state_service.audit.verify_log`` (what ``tokenwatch audit verify`` runs: the
  chain, the seals and the checkpoints in S3), as the read-only role.
* The warehouse: the audit marts (``audit_token_chains``, one verdict per token by the same rules
  and priority as ``verify.py``; ``audit_token_transitions``' ``chain_status`` per row).

Both read the whole log, not only the period: a chain is verified whole. They agree when every
token has the same verdict (kind and version) on both sides, except the kinds only PostgreSQL
can see (the ``tokens`` table and the seals stay there): for those the warehouse must say intact.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from reporting.audit_pack.evidence import Table

#: What only the PostgreSQL verifier can see (tests/tamper.py's ``in_warehouse=False``).
POSTGRES_ONLY = ("token_attributes", "token_head", "unsealed_row")


@dataclass
class Chains:
    postgres_checked: bool
    postgres_note: str
    postgres: dict = field(default_factory=dict)  # rows, tokens, checkpoints, checkpointed_rows
    postgres_findings: list[tuple] = field(default_factory=list)  # (token, version, kind, detail)
    warehouse: dict = field(default_factory=dict)  # tokens, rows_by_status
    warehouse_findings: list[tuple] = field(default_factory=list)
    row_findings: list[tuple] = field(default_factory=list)  # (token, version, chain_status)
    disagreements: list[str] = field(default_factory=list)

    @property
    def agree(self) -> bool | None:
        """None when PostgreSQL's verification did not run."""
        return None if not self.postgres else not self.disagreements

    @property
    def clean(self) -> bool:
        return not (self.postgres_findings or self.warehouse_findings or self.row_findings)

    def table(self) -> Table:
        rows = [("postgresql", t, v, k, d) for t, v, k, d in self.postgres_findings]
        rows += [("warehouse", t, v, k, d) for t, v, k, d in self.warehouse_findings]
        rows += [("warehouse (row)", t, v, s, "audit_token_transitions.chain_status")
                 for t, v, s in self.row_findings]
        return Table("chain_findings.csv", ("side", "token_ref", "version", "kind", "detail"),
                     rows, "Every finding of both verifications (the whole log).")


def verify_postgres(pg_dsn: str | None, keyring: Mapping[str, bytes] | None,
                    checkpoint_store) -> tuple[bool, str, dict, list[tuple]]:
    from state_service.audit import verify_log
    from state_service.verify import CannotVerify

    if pg_dsn is None:
        return False, "not checked: no PostgreSQL connection was given", {}, []
    if keyring is None:
        from tokenwatch import config

        keyring = config.chain_keys()[1]
    s3, bucket = checkpoint_store if checkpoint_store is not None else (None, None)
    try:
        result = verify_log(pg_dsn, keyring, s3, bucket)
    except CannotVerify as exc:
        return False, f"not checked: could not verify: {exc}", {}, []
    facts = {"rows": result.rows, "tokens": result.tokens, "checkpoints": result.checkpoints,
             "checkpointed_rows": result.checkpointed_rows,
             "unsealed_rows": result.unsealed_rows}
    findings = [(f.token_ref, f.version, f.kind, f.detail) for f in result.findings]
    if s3 is None:
        note = ("verified without checkpoints (no checkpoint store given): a deleted last row "
                "or an erased token cannot be seen")
        return False, note, facts, findings
    if result.checkpoints == 0:
        note = "no checkpoint taken yet: a deleted last row or an erased token cannot be seen"
        return False, note, facts, findings
    return True, (f"verified {result.rows:,} rows of {result.tokens:,} tokens against "
                  f"{result.checkpoints} checkpoint(s)"), facts, findings


def verify_both(wh, relation: Callable[[str], str], pg_dsn: str | None,
                keyring: Mapping[str, bytes] | None, checkpoint_store) -> Chains:
    complete, note, facts, pg_findings = verify_postgres(pg_dsn, keyring, checkpoint_store)
    chains = Chains(postgres_checked=complete, postgres_note=note, postgres=facts,
                    postgres_findings=pg_findings)
    chains.warehouse_findings = [
        (t, None if v is None else int(v), k, e) for t, v, k, e in wh.query(
            f"select token_ref, finding_version, chain_verdict, evidence from "
            f"{relation('audit_token_chains')} where chain_verdict <> 'intact' "
            "order by token_ref")]
    (tokens,), = wh.query(f"select count(*) from {relation('audit_token_chains')}")
    statuses = dict(wh.query(f"select chain_status, count(*) from "
                             f"{relation('audit_token_transitions')} group by chain_status"))
    chains.warehouse = {"tokens": int(tokens),
                        "rows_by_status": {k: int(v) for k, v in sorted(statuses.items())}}
    chains.row_findings = [(t, int(v), s) for t, v, s in wh.query(
        f"select token_ref, token_version, chain_status from "
        f"{relation('audit_token_transitions')} where chain_status <> 'verified' "
        "order by token_ref, token_version")]
    # a finding on a checkpoint itself (not a token) is the warehouse's checkpoint_missing
    chains.warehouse_findings += [
        ("(checkpoints)", None, "checkpoint_missing", e) for (e,) in wh.query(
            f"select evidence from {relation('audit_exceptions')} "
            "where exception_type = 'checkpoint_missing' order by source_location")]
    if pg_dsn is not None and facts:
        chains.disagreements = disagreements(pg_findings, chains.warehouse_findings)
    return chains


def disagreements(pg: list[tuple], wh: list[tuple]) -> list[str]:
    """Each token on which the two verifications differ, in words."""
    theirs = {t: (k, v) for t, v, k, _ in pg if t != "(checkpoints)"}
    ours = {t: (k, v) for t, v, k, _ in wh if t != "(checkpoints)"}
    out = []
    for token in sorted(set(theirs) | set(ours)):
        p, w = theirs.get(token), ours.get(token)
        if p and p[0] in POSTGRES_ONLY and w is None:
            continue  # the warehouse cannot see it, and says intact: agreement
        if p != w:
            out.append(f"token {token}: PostgreSQL {_say(p)}, the warehouse {_say(w)}")
    pg_cp = sorted(d for t, _, k, d in pg if t == "(checkpoints)")
    wh_cp = sorted(d for t, _, k, d in wh if t == "(checkpoints)")
    if bool(pg_cp) != bool(wh_cp):
        out.append(f"checkpoints: PostgreSQL {len(pg_cp)} finding(s), the warehouse "
                   f"{len(wh_cp)}")
    return out


def _say(verdict: tuple | None) -> str:
    if verdict is None:
        return "intact"
    kind, version = verdict
    return kind + (f" at version {version}" if version is not None else "")
