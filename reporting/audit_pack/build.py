"""Building a pack: gather the evidence, judge the controls, write the CSV files, the charts,
the report (HTML, and the PDF WeasyPrint renders from it) and the manifest, in a folder of its
own (``tokenwatch-audit-<start>_<end>/``, written beside and renamed into place, so a reader
never sees half a pack)."""

from __future__ import annotations

import csv
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from reporting.audit_pack import charts, controls, evidence, html, manifest
from reporting.audit_pack.chains import Chains, verify_both
from reporting.audit_pack.evidence import Period, Table
from tokenwatch import pan

FORMATS = ("pdf", "html")
CHAIN_KINDS_IN_EXCEPTIONS = frozenset((
    "edited_row", "deleted_row", "inserted_row", "reordered_rows", "forked_version",
    "whole_chain_rewrite", "token_erased", "checkpoint_mismatch", "checkpoint_missing",
    "hash_chain_break"))


@dataclass
class Pack:
    directory: Path
    report_pdf: Path | None
    report_html: Path
    manifest: Path
    controls: dict[str, str]  # control id -> "pass" | "fail" | "not checked"
    summary: dict
    passed: bool


@dataclass
class Gathered:
    """Everything the report shows."""

    period: Period
    chains: Chains
    reconciliation: Table
    transitions: dict
    wallet_days: Table
    wallet: dict
    lake_days: Table
    lake: dict
    exceptions: Table
    exceptions_by_type: Table
    exceptions_per_day: list[tuple]
    quarantine: Table
    lifecycle: Table
    past_expiry: Table
    fields: dict
    covered: set[date]
    reviews: Table
    access: Table
    access_by_who: Table
    failed_auth: Table
    access_missing: str | None
    service_refused: Table
    findings: list[str] = field(default_factory=list)
    counts: dict = field(default_factory=dict)

    def tables(self) -> list[Table]:
        return [self.chains.table(), self.reconciliation, self.wallet_days, self.lake_days,
                self.exceptions, self.exceptions_by_type, self.quarantine, self.lifecycle,
                self.past_expiry, self.reviews, self.access, self.access_by_who,
                self.failed_auth, self.service_refused]


def default_access_log(wh):
    """Where the configured target keeps the reports API's access log: on DuckDB the file
    beside the warehouse, else the warehouse's ``reports.access_log`` (read through ``wh``)."""
    from ingestion.warehouse import target_name
    from reporting.api.access_log import default_path

    return default_path() if target_name() == "duckdb" else wh


def gather(wh, relation: Callable[[str], str], period: Period, pg_dsn: str | None,
           checkpoint_store, keyring: Mapping[str, bytes] | None, access_log) -> Gathered:
    recon, transitions = evidence.transitions_per_day(wh, relation, period, pg_dsn)
    wallet_days, wallet = evidence.wallet_events(wh, period)
    lake_days, lake = evidence.lake(wh, period)
    found, by_type = evidence.exceptions(wh, relation, period)
    access, by_who, failed, missing = evidence.access_records(access_log, period)
    g = Gathered(
        period=period, chains=verify_both(wh, relation, pg_dsn, keyring, checkpoint_store),
        reconciliation=recon, transitions=transitions, wallet_days=wallet_days, wallet=wallet,
        lake_days=lake_days, lake=lake, exceptions=found, exceptions_by_type=by_type,
        exceptions_per_day=evidence.exceptions_per_day(wh, relation, period),
        quarantine=evidence.quarantine(wh), lifecycle=evidence.lifecycle_actions(
            wh, relation, period), past_expiry=evidence.past_expiry(found),
        fields=evidence.event_fields(wh, relation, period),
        covered=evidence.covered_days(wh, relation, period), reviews=evidence.reviews(wh, period),
        access=access, access_by_who=by_who, failed_auth=failed, access_missing=missing,
        service_refused=evidence.service_refusals(pg_dsn, period))
    g.findings = findings(g)
    g.counts = counts(g)
    return g


def findings(g: Gathered) -> list[dict]:
    """Each problem named: its kind, which token or row (the subject) and what was found, as
    the summary page lists them."""
    out = []

    def add(kind: str, subject: str, detail: str) -> None:
        out.append({"kind": kind, "subject": subject, "detail": detail})

    for side, found in (("PostgreSQL", g.chains.postgres_findings),
                        ("the warehouse", g.chains.warehouse_findings)):
        for token, version, kind, detail in found:
            at = f" version {version}" if version is not None else ""
            add(kind, f"token {token}{at}, found by {side}", detail)
    for d in g.chains.disagreements:
        add("verifications disagree", d.partition(":")[0], d.partition(": ")[2])
    cols = g.exceptions.columns
    for row in g.exceptions.rows:
        r = dict(zip(cols, row, strict=True))
        if r["exception_type"] in CHAIN_KINDS_IN_EXCEPTIONS:
            continue  # named above, from the chains
        where = f"{r['source_table']} row {r['source_location']}"
        if r["column_name"]:
            where += f", column {r['column_name']}"
        token = f"token {r['token_ref']} in " if r["token_ref"] else ""
        add(f"{r['exception_type']} ({r['severity']})", token + where, r["evidence"])
    for d in g.reconciliation.rows:
        if d[-1] == "no":
            add("transitions do not reconcile", str(d[0]),
                f"PostgreSQL {d[1]}, raw layer {d[2]}, marts {d[4]}")
    return out


def counts(g: Gathered) -> dict:
    t, w = g.transitions, g.wallet
    severity: dict[str, int] = {}
    for _, sev, n, _ in g.exceptions_by_type.rows:
        severity[sev] = severity.get(sev, 0) + n
    pg = t["postgresql"]
    pg_tokens = g.chains.postgres.get("tokens")
    return {
        "Transitions (PostgreSQL / raw / marts)":
            f"{'not checked' if pg is None else f'{pg:,}'} / {t['raw_layer']:,} / "
            f"{t['marts']:,}",
        "Tokens verified (PostgreSQL / warehouse)":
            f"{'not checked' if pg_tokens is None else f'{pg_tokens:,}'} / "
            f"{g.chains.warehouse.get('tokens', 0):,}",
        "Chain findings (PostgreSQL / warehouse)":
            f"{len(g.chains.postgres_findings)} / {len(g.chains.warehouse_findings)}",
        "Wallet events loaded in the period": f"{w['loaded_in_period']:,}",
        "Lake objects / lines loaded": f"{g.lake['objects']:,} / {g.lake['lines']:,}",
        "Audit exceptions": f"{len(g.exceptions.rows):,}" + (
            " (" + ", ".join(f"{k} {v}" for k, v in sorted(severity.items()) if v) + ")"
            if any(severity.values()) else ""),
        "Records quarantined (to date)": f"{sum(r[2] for r in g.quarantine.rows):,}",
        "Days reviewed": f"{sum(1 for r in g.reviews.rows if r[1] != 'unchecked')} of "
                         f"{len(g.reviews.rows)}",
        "Access records / refused": (g.access_missing or
                                     f"{len(g.access.rows):,} / {len(g.failed_auth.rows):,}"),
        "State service requests refused": (
            f"{sum(r[5] for r in g.service_refused.rows):,}" if pg_dsn_read(g) else
            "not read"),
    }


def pg_dsn_read(g: Gathered) -> bool:
    """The state service's refusals were read (PostgreSQL reachable, the table there)."""
    return not g.service_refused.note.startswith(evidence.REFUSALS_NOT_READ)


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    return pan.redact(str(value))


def write_csv(path: Path, t: Table) -> None:
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(t.columns)
        out.writerows([_cell(v) for v in row] for row in t.rows)


def pack_name(period: Period) -> str:
    return f"tokenwatch-audit-{period.start.isoformat()}_{period.end.isoformat()}"


def build(wh, *, relation: Callable[[str], str], start: date, end: date, out_dir: Path,
          pg_dsn: str | None, formats: Sequence[str] = FORMATS, generated_by: str,
          checkpoint_store=None, keyring: Mapping[str, bytes] | None = None,
          access_log: object = ..., sources: Sequence[str] | None = None) -> Pack:
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise ValueError(f"unknown format(s) {sorted(unknown)}; expected pdf and/or html")
    period = Period(start, end)
    g = gather(wh, relation, period, pg_dsn, checkpoint_store, keyring,
               default_access_log(wh) if access_log is ... else
               wh if access_log is None else access_log)
    judged = controls.evaluate(g)
    facts = {
        "period": {"start": start.isoformat(), "end": end.isoformat()},
        "generated_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "generated_by": generated_by, "software": manifest.software_version(),
        "dbt_manifest_sha256": manifest.dbt_manifest_sha256(),
        "sources": list(sources or _sources(wh, pg_dsn, checkpoint_store, g)),
    }
    out_dir = Path(out_dir)
    final = out_dir / pack_name(period)
    work = out_dir / f".{final.name}.partial"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        for t in g.tables():
            write_csv(work / t.file, t)
        pngs = charts.render(period.days, g.exceptions_per_day, g.reviews.rows)
        for name, data in pngs.items():
            (work / name).write_bytes(data)
        alts = {"exceptions_by_day.png": "Audit exceptions per day, by type",
                "reviews_by_day.png": "The automated review's verdict per day"}
        report_html = work / "report.html"
        report_html.write_text(html.document(g, judged, facts, alts), encoding="utf-8")
        if "pdf" in formats:
            from weasyprint import HTML

            HTML(filename=str(report_html), base_url=str(work)).write_pdf(work / "report.pdf")
        verdicts = {c.id: c.verdict for c in judged}
        overall = ("pass" if all(v == controls.PASS for v in verdicts.values()) else
                   "fail" if controls.FAIL in verdicts.values() else "not checked")
        body = {**facts, "controls": verdicts, "verdict": overall}
        manifest_path = manifest.write(work, body)
        if final.exists():
            shutil.rmtree(final)
        os.replace(work, final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    summary = {"period": facts["period"], "counts": g.counts, "verdict": overall,
               "findings": [f"{f['kind']}: {f['subject']}: {f['detail']}"
                            for f in g.findings], "generated_at": facts["generated_at"],
               "generated_by": generated_by, "version": facts["software"],
               "dbt_manifest_sha256": facts["dbt_manifest_sha256"],
               # per side; a side that did not run is left out (no false zero)
               "chain_findings": {"warehouse": len(g.chains.warehouse_findings)}
               | ({"postgres": len(g.chains.postgres_findings)} if g.chains.postgres else {}),
               "manifest_sha256": manifest.sha256(final / manifest_path.name)}
    return Pack(directory=final, report_pdf=final / "report.pdf" if "pdf" in formats else None,
                report_html=final / "report.html", manifest=final / manifest_path.name,
                controls=verdicts, summary=summary, passed=overall == "pass")


def _sources(wh, pg_dsn: str | None, checkpoint_store, g: Gathered) -> list[str]:
    name = getattr(wh, "name", None) or getattr(wh, "engine", None) or type(wh).__name__
    out = [f"warehouse: {name} (marts and raw layer)"]
    if pg_dsn is None:
        out.append("state service PostgreSQL: not checked")
    else:
        from psycopg.conninfo import conninfo_to_dict

        params = conninfo_to_dict(pg_dsn)
        out.append(f"state service PostgreSQL: database {params.get('dbname', '?')} as "
                   f"{params.get('user', '?')}")
    out.append("checkpoints: " + (f"s3://{checkpoint_store[1]}" if checkpoint_store else
                                  "not given"))
    out.append("reports API access log: " + ("not found" if g.access_missing else "read"))
    return out
