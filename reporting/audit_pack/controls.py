"""Each control's verdict, from the evidence the pack holds: ``pass``, ``fail`` or
``not checked`` (the evidence could not be gathered: no PostgreSQL connection, no checkpoints,
no access log), with the reason in words. Only what the pack can check is a control; the rest of
Requirement 10 is in the mapping (``pci.py``) with the operator's part."""

from __future__ import annotations

from dataclasses import dataclass

from reporting.audit_pack.pci import CONTROLS

PASS, FAIL, NOT_CHECKED = "pass", "fail", "not checked"


@dataclass(frozen=True)
class Control:
    id: str
    title: str
    verdict: str
    basis: str


def evaluate(ev) -> list[Control]:
    """``ev``: the pack's :class:`reporting.audit_pack.build.Gathered`."""
    out = []

    def add(cid: str, verdict: str, basis: str) -> None:
        out.append(Control(cid, CONTROLS[cid], verdict, basis))

    # 10.2.1: every event logged reaches the warehouse, nothing dropped
    recon, wallet, lake = ev.transitions, ev.wallet, ev.lake
    problems = []
    if recon["checked_against_postgresql"] and not recon["agrees"]:
        problems.append("transitions differ between PostgreSQL, the raw layer and the marts on "
                        + ", ".join(str(r[0]) for r in ev.reconciliation.rows if r[-1] == "no"))
    elif not recon["agrees"]:
        problems.append("the marts' transitions differ from the raw layer's")
    if not wallet["balanced"]:
        problems.append(f"the wallet-events ledger does not balance ({wallet['ledger']}, "
                        f"{wallet['rows_in_raw']} rows, {wallet['quarantined_in_raw']} "
                        "quarantined)")
    if not lake["agrees"]:
        problems.append("lake lines differ from the rows loaded on "
                        + ", ".join(str(r[0]) for r in ev.lake_days.rows if r[-1] == "no"))
    if problems:
        add("10.2.1", FAIL, "; ".join(problems))
    elif not recon["checked_against_postgresql"]:
        add("10.2.1", NOT_CHECKED, "PostgreSQL was not read: the transitions could not be "
                                   "reconciled with the source")
    else:
        add("10.2.1", PASS, f"{recon['postgresql']:,} transitions in PostgreSQL = raw layer = "
                            f"marts on every day; wallet-events ledger balanced; "
                            f"{lake['objects']:,} lake objects' lines all loaded or quarantined")

    fields = ev.fields
    if fields["missing_a_field"]:
        add("10.2.2", FAIL, f"{fields['missing_a_field']} of {fields['transitions']:,} "
                            "transitions lack a required field")
    else:
        add("10.2.2", PASS, f"all {fields['transitions']:,} transitions of the period carry "
                            "actor, transition, token, event id, occurred_at, recorded_at and "
                            "source location")

    chains = ev.chains
    if not chains.clean or chains.agree is False:
        n = (len(chains.postgres_findings), len(chains.warehouse_findings),
             len(chains.row_findings))
        why = f"PostgreSQL {n[0]} finding(s), the warehouse {n[1]} (and {n[2]} row(s) failing)"
        if chains.disagreements:
            why += f"; the two disagree on {len(chains.disagreements)} token(s)"
        add("10.3.4", FAIL, why)
    elif not chains.postgres_checked:
        add("10.3.4", NOT_CHECKED, f"the warehouse found nothing; PostgreSQL: "
                                   f"{chains.postgres_note}")
    else:
        add("10.3.4", PASS, f"both verifications found nothing and agree "
                            f"({chains.postgres_note})")

    exc = ev.exceptions
    at = exc.columns.index("exception_type")
    kinds: dict[str, int] = {}
    for row in exc.rows:
        kinds[row[at]] = kinds.get(row[at], 0) + 1
    if exc.rows:
        add("TW-EXC", FAIL, f"{len(exc.rows)} exception(s): "
                            + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
    else:
        add("TW-EXC", PASS, "audit_exceptions holds nothing observed in the period")
    pans = kinds.get("pan_like_value", 0)
    add("TW-PAN", FAIL if pans else PASS,
        f"{pans} PAN-like value(s) in the raw layer" if pans
        else "the PAN scan (pan_like_value) found nothing in the period")

    unreviewed = [r[0] for r in ev.reviews.rows if r[1] == "unchecked"]
    if unreviewed:
        add("10.4.1.1", FAIL, f"{len(unreviewed)} day(s) without an automated review: "
                              + ", ".join(str(d) for d in unreviewed))
    else:
        withheld = sum(1 for r in ev.reviews.rows if r[1] == "withheld")
        add("10.4.1.1", PASS, f"every day of the period has the gate's verdict "
                              f"({withheld} withheld, naming the failed checks)")

    missing = [d for d in ev.period.days if d not in ev.covered]
    add("10.5.1", FAIL if missing else PASS,
        f"the audit marts lack {len(missing)} day(s): " + ", ".join(map(str, missing))
        if missing else f"the audit marts hold all {len(ev.period.days)} day(s) of the period "
                        "(this pack does not check the 12 months)")

    late = sum(1 for r in exc.rows if r[at] == "event_time_after_recorded_at"
               and r[exc.columns.index("source_table")] == "token_state_transitions")
    if fields["without_recorded_at"] or late:
        add("10.6", FAIL, f"{fields['without_recorded_at']} transition(s) without recorded_at, "
                          f"{late} occurring after they were recorded beyond the allowed skew")
    else:
        add("10.6", PASS, "every transition carries the database clock's recorded_at; none "
                          "occurred after it was recorded")

    if ev.access_missing:
        add("TW-ACCESS", NOT_CHECKED, ev.access_missing)
    else:
        add("TW-ACCESS", PASS, f"{len(ev.access.rows):,} access record(s) in the period, "
                               f"{len(ev.failed_auth.rows)} refused")
    order = list(CONTROLS)
    return sorted(out, key=lambda c: order.index(c.id))
