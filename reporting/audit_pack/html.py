"""The report as one HTML document with a print stylesheet (A4, page numbers, a summary page
first); WeasyPrint renders the PDF from the same file. Every text goes through the PAN rule's
redaction and HTML escaping; a long table shows its first rows and names its CSV file."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from datetime import date, datetime

from reporting.audit_pack import pci
from reporting.audit_pack.controls import FAIL, NOT_CHECKED, PASS, Control
from reporting.audit_pack.evidence import Table
from tokenwatch import pan

#: Rows of a table shown in the report; the CSV file holds them all.
MAX_ROWS = 60
#: Findings named on the summary page; the sections hold them all.
SUMMARY_FINDINGS = 12

CSS = """
@page { size: A4; margin: 13mm 14mm 16mm 14mm;
  @bottom-left { content: "tokenwatch audit pack, " string(period);
                 font: 7.5pt 'DejaVu Sans', sans-serif; color: #666; }
  @bottom-right { content: "page " counter(page) " of " counter(pages);
                  font: 7.5pt 'DejaVu Sans', sans-serif; color: #666; } }
html { font: 9pt/1.38 'DejaVu Sans', 'Liberation Sans', Helvetica, Arial, sans-serif;
       color: #1d1d1f; }
body { margin: 0 auto; max-width: 190mm; }
h1 { font-size: 17pt; margin: 0 0 1mm; string-set: period attr(data-period); }
h2 { font-size: 12.5pt; margin: 7mm 0 2mm; padding-bottom: 1mm;
     border-bottom: 1.2pt solid #1f3b63; color: #1f3b63; }
h3 { font-size: 10pt; margin: 3.5mm 0 1.2mm; color: #1f3b63; }
p { margin: 1mm 0 2mm; }
.sub { color: #555; margin-bottom: 3mm; }
section { page-break-before: always; }
section.summary { page-break-before: avoid; }
table { border-collapse: collapse; width: 100%; margin: 1mm 0 3mm; font-size: 7.8pt; }
th, td { text-align: left; vertical-align: top; padding: 0.8mm 1.6mm;
         border-bottom: 0.5pt solid #d9dde3; }
th { background: #eef1f5; font-weight: bold; color: #333; }
tr { page-break-inside: avoid; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.mono { font-family: 'DejaVu Sans Mono', monospace; font-size: 7.2pt; word-break: break-all; }
.badge { display: inline-block; padding: 0.3mm 1.8mm; border-radius: 1.2mm; font-weight: bold;
         font-size: 7.5pt; white-space: nowrap; }
.pass { background: #e3f3e1; color: #1e6b22; }
.fail { background: #fbe3e2; color: #a3211c; }
.notchecked { background: #fff2d6; color: #7a5200; }
.verdict { margin: 2mm 0 3mm; padding: 2.5mm 3.5mm; border-radius: 1.5mm; font-size: 10.5pt;
           font-weight: bold; }
.meta td { border: none; padding: 0.4mm 1.6mm 0.4mm 0; }
.meta td:first-child { color: #555; width: 34mm; }
.counts td:nth-child(odd) { color: #555; width: 57mm; }
.counts td:nth-child(3) { padding-left: 4mm; }
.counts td:nth-child(even) { width: 34mm; }
ul.findings { margin: 1mm 0 2mm; padding-left: 4.5mm; }
ul.findings li { margin-bottom: 1mm; }
.note { color: #555; font-size: 7.8pt; }
.more { color: #555; font-style: italic; }
img.chart { width: 100%; margin: 2mm 0 4mm; }
.cols { display: flex; gap: 5mm; } .cols > div { flex: 1; }
"""


def esc(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = value.strftime("%Y-%m-%d %H:%M:%S") + (" UTC" if value.tzinfo else "")
    elif isinstance(value, date):
        value = value.isoformat()
    elif isinstance(value, float):
        value = f"{value:,.1f}"
    elif isinstance(value, int) and not isinstance(value, bool):
        value = f"{value:,}"
    return html.escape(pan.redact(str(value)))


def badge(verdict: str) -> str:
    css = {PASS: "pass", FAIL: "fail", NOT_CHECKED: "notchecked"}.get(verdict, "notchecked")
    return f'<span class="badge {css}">{esc(verdict)}</span>'


def table(t: Table, columns: Sequence[str] | None = None, limit: int = MAX_ROWS,
          mono: Iterable[str] = ("token_ref", "source_location", "path", "first_location",
                                 "example_location")) -> str:
    names = list(columns or t.columns)
    idx = [t.columns.index(c) for c in names]
    mono = set(mono)
    if not t.rows:
        return f'<p class="note">No rows. {esc(t.note)}</p>' if t.note else \
            '<p class="note">No rows.</p>'
    head = "".join(f'<th class="{_kind(t, i)}">{esc(n.replace("_", " "))}</th>'
                   for n, i in zip(names, idx, strict=True))
    body = []
    for row in t.rows[:limit]:
        cells = []
        for n, i in zip(names, idx, strict=True):
            v = row[i]
            css = "num" if isinstance(v, int | float) and not isinstance(v, bool) else (
                "mono" if n in mono else "")
            if n in ("agrees",):
                v = badge(PASS if v == "yes" else FAIL).replace(">pass<", ">yes<").replace(
                    ">fail<", ">no<")
                cells.append(f"<td>{v}</td>")
                continue
            cells.append(f'<td class="{css}">{esc(v)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = (f'<p class="more">{len(t.rows) - limit:,} more row(s) in {esc(t.file)}.</p>'
            if len(t.rows) > limit else "")
    note = f'<p class="note">{esc(t.note)} File: {esc(t.file)}.</p>' if t.note else \
        f'<p class="note">File: {esc(t.file)}.</p>'
    return (f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
            + more + note)


def _kind(t: Table, i: int) -> str:
    first = t.rows[0][i] if t.rows else None
    return "num" if isinstance(first, int | float) and not isinstance(first, bool) else ""


def _kv(pairs: Iterable[tuple[str, object]], raw: bool = False) -> str:
    rows = "".join(f"<tr><td>{esc(k)}</td><td>{v if raw else esc(v)}</td></tr>"
                   for k, v in pairs)
    return f'<table class="meta">{rows}</table>'


def summary(g, controls: list[Control], facts: dict) -> str:
    failed = [c for c in controls if c.verdict == FAIL]
    unchecked = [c for c in controls if c.verdict == NOT_CHECKED]
    if failed:
        banner = (f'<div class="verdict fail">{len(failed)} of {len(controls)} controls failed'
                  f': {esc(", ".join(c.id for c in failed))}</div>')
    elif unchecked:
        banner = (f'<div class="verdict notchecked">No control failed; {len(unchecked)} not '
                  f'checked: {esc(", ".join(c.id for c in unchecked))}</div>')
    else:
        banner = f'<div class="verdict pass">Every control passed ({len(controls)})</div>'
    sw = facts["software"]
    meta = _kv([
        ("Period", f"{g.period.start} to {g.period.end} (UTC days, inclusive)"),
        ("Generated", f"{facts['generated_at'].replace('T', ' ').replace('+00:00', ' UTC')} "
                      f"by {facts['generated_by']}"),
        ("Software", f"tokenwatch {sw['tokenwatch']}"
                     + (f", git commit {sw['git_commit']}" if sw["git_commit"] else
                        ", no git commit (not a checkout)")),
        ("dbt manifest", facts["dbt_manifest_sha256"] or "not found"),
        ("Sources", "; ".join(facts["sources"])),
    ])
    rows = "".join(f"<tr><td><b>{esc(c.id)}</b></td><td>{esc(c.title)}</td>"
                   f"<td>{badge(c.verdict)}</td><td>{esc(c.basis)}</td></tr>" for c in controls)
    ctable = ("<table><thead><tr><th style='width:10%'>control</th><th style='width:37%'>what "
              "it checks</th><th style='width:11%'>verdict</th><th>based on</th></tr></thead>"
              f"<tbody>{rows}</tbody></table>")
    findings = g.findings
    if findings:
        items = "".join(f"<li><b>{esc(f['kind'])}</b>: {esc(f['subject'])}. "
                        f'<span class="note">{esc(f["detail"])}</span></li>'
                        for f in findings[:SUMMARY_FINDINGS])
        more = (f'<li class="more">{len(findings) - SUMMARY_FINDINGS} more in sections 2 '
                "and 4</li>" if len(findings) > SUMMARY_FINDINGS else "")
        fblock = f'<ul class="findings">{items}{more}</ul>'
    else:
        fblock = '<p>None: no chain finding, no audit exception in the period.</p>'
    pairs = list(g.counts.items())
    half = (len(pairs) + 1) // 2
    cells = [(pairs[i], pairs[i + half] if i + half < len(pairs) else ("", ""))
             for i in range(half)]
    counts = '<table class="meta counts">' + "".join(
        f"<tr><td>{esc(a)}</td><td>{esc(b)}</td><td>{esc(c)}</td><td>{esc(d)}</td></tr>"
        for (a, b), (c, d) in cells) + "</table>"
    return (f'<section class="summary"><h1 data-period="{esc(g.period)}">Audit pack: '
            "payment-token lifecycle records</h1>"
            f'<p class="sub">PCI DSS v4.0.1 Requirement 10 evidence from tokenwatch, '
            f"{esc(g.period)}</p>{banner}{meta}<h3>Findings</h3>{fblock}"
            f"<h3>Controls</h3>{ctable}<h3>Counts</h3>{counts}</section>")


def chain_section(g) -> str:
    c = g.chains
    pg = (_kv([("Result", c.postgres_note)] + [(k.replace("_", " "), v)
                                                for k, v in c.postgres.items()]))
    wh = _kv([("tokens", c.warehouse.get("tokens", 0))]
             + [(f"rows {k}", v) for k, v in c.warehouse.get("rows_by_status", {}).items()])
    if c.agree is None:
        agree = "<p>Agreement: <b>not checked</b> (PostgreSQL was not verified).</p>"
    elif c.agree:
        agree = "<p>Agreement: <b>the two verifications agree</b> on every token.</p>"
    else:
        items = "".join(f"<li>{esc(d)}</li>" for d in c.disagreements)
        agree = (f"<p>Agreement: <b>they disagree</b> on {len(c.disagreements)} "
                 f'token(s):</p><ul class="findings">{items}</ul>')
    return ("<section><h2>2. Chain verification, from both sides</h2>"
            "<p>PostgreSQL: <code>tokenwatch audit verify</code>'s library (chain, seals, "
            "checkpoints in S3) as the read-only role. The warehouse: the audit marts "
            "(audit_token_chains per token, audit_token_transitions.chain_status per row). Both "
            "verify the whole log. The tokens table and the seals stay in PostgreSQL: "
            "token_attributes, token_head and unsealed_row are PostgreSQL's alone.</p>"
            f'<div class="cols"><div><h3>PostgreSQL</h3>{pg}</div>'
            f"<div><h3>Warehouse</h3>{wh}</div></div>{agree}"
            f"<h3>Every finding</h3>{table(c.table())}</section>")


def reconciliation_section(g) -> str:
    w = g.wallet
    ledger = w["ledger"]
    wallet = _kv([("streams", ", ".join(w["streams"]) or "none"),
                  ("read (ledger)", ledger["read"]), ("loaded (ledger)", ledger["loaded"]),
                  ("duplicates skipped (ledger)", ledger["duplicates"]),
                  ("quarantined (ledger)", ledger["quarantined"]),
                  ("rows in raw.wallet_events", w["rows_in_raw"]),
                  ("quarantined in raw.quarantine", w["quarantined_in_raw"]),
                  ("balanced", "yes" if w["balanced"] else "NO")])
    return ("<section><h2>3. Reconciliation per day</h2>"
            f"<h3>Transitions: PostgreSQL, raw layer, marts</h3>{table(g.reconciliation)}"
            f'<h3>Wallet events (Kinesis)</h3><div class="cols"><div>{wallet}</div>'
            f"<div>{table(g.wallet_days)}</div></div>"
            f"<h3>Lake objects and lines (S3)</h3>{table(g.lake_days)}</section>")


def exceptions_section(g) -> str:
    at = g.exceptions.columns.index("exception_type")
    parts = [table(g.exceptions_by_type)]
    for kind in sorted({r[at] for r in g.exceptions.rows}):
        rows = Table(g.exceptions.file, g.exceptions.columns,
                     [r for r in g.exceptions.rows if r[at] == kind])
        parts.append(f"<h3>{esc(kind)} ({len(rows.rows)})</h3>" + table(
            rows, ("severity", "token_ref", "token_version", "observed_at", "source_location",
                   "column_name", "evidence")))
    return ("<section><h2>4. Exceptions with evidence</h2>" + "".join(parts)
            + f"<h3>Quarantine by source and reason</h3>{table(g.quarantine)}"
            f"<h3>Suspensions, resumes and deactivations</h3>{table(g.lifecycle)}"
            f"<h3>Tokens active past expiry</h3>"
            + table(g.past_expiry, ("token_ref", "wallet_id", "observed_at", "evidence"))
            + "</section>")


def access_section(g) -> str:
    missing = (f"<p><b>{esc(g.access_missing)}</b>.</p>" if g.access_missing else "")
    return ("<section><h2>5. Access records</h2>" + missing
            + f"<h3>Who queried which reports</h3>{table(g.access_by_who)}"
            + f"<h3>Every request</h3>{table(g.access)}"
            + "<h3>Failed authentications: the reports API</h3>"
            "<p>The reports API logs refused requests (who is anonymous or invalid).</p>"
            + table(g.failed_auth)
            + "<h3>Failed authentications: the state service</h3>"
            "<p>Every 401 and 403 of the state service, counted per minute in PostgreSQL "
            "(<code>auth_failures</code>).</p>" + table(g.service_refused) + "</section>")


def pci_section(controls: list[Control]) -> str:
    verdict = {c.id: c.verdict for c in controls}
    rows = []
    for r in pci.REQUIREMENTS:
        v = badge(verdict[r.control]) + f' <span class="note">{esc(r.control)}</span>' \
            if r.control in verdict else '<span class="note">operator</span>'
        rows.append(f"<tr><td><b>{esc(r.id)}</b><br>{esc(r.title)}</td><td>{esc(r.tokenwatch)}"
                    f"</td><td>{esc(r.evidence)}</td><td>{esc(r.operator)}</td><td>{v}</td></tr>")
    return ("<section><h2>6. PCI DSS v4.0.1 Requirement 10</h2>"
            "<p>What tokenwatch does, where this pack holds the evidence, and what remains the "
            "operator's. A verdict appears where the pack can check the requirement from "
            "evidence; elsewhere the requirement is the operator's to evidence.</p>"
            "<table><thead><tr><th style='width:15%'>requirement</th><th style='width:32%'>"
            "tokenwatch</th><th style='width:16%'>evidence</th><th style='width:23%'>operator"
            "</th><th style='width:14%'>verdict</th></tr></thead><tbody>" + "".join(rows)
            + "</tbody></table></section>")


def charts_section(g, files: dict[str, str]) -> str:
    imgs = "".join(f'<img class="chart" src="{esc(name)}" alt="{esc(alt)}">'
                   for name, alt in files.items())
    return (f"<section><h2>7. Exceptions and reviews over the period</h2>{imgs}"
            + table(g.reviews) + "</section>")


def document(g, controls: list[Control], facts: dict, charts: dict[str, str]) -> str:
    parts = [summary(g, controls, facts), chain_section(g), reconciliation_section(g),
             exceptions_section(g), access_section(g), pci_section(controls),
             charts_section(g, charts)]
    title = esc(f"tokenwatch audit pack {g.period}")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}'
            f"</title><style>{CSS}</style></head><body>{''.join(parts)}</body></html>\n")
