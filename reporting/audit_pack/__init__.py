"""The audit pack: evidence for an auditor, mapped to PCI DSS v4.0.1 Requirement 10.

A pack is a folder ``tokenwatch-audit-<start>_<end>/``: ``report.html`` and ``report.pdf``
(WeasyPrint, from the same HTML), one CSV file per evidence table, two PNG charts and
``manifest.json`` (the sha256 of every file, the software version, the dbt manifest's hash, the
period, when and by whom). ``check_pack`` verifies a pack against its manifest.

Modules: ``evidence`` (the queries), ``chains`` (both verifications and their agreement),
``controls`` (each verdict from evidence), ``pci`` (the Requirement 10 mapping, as data),
``charts``, ``html`` (the report), ``manifest``, ``build`` (putting it together).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

from reporting.audit_pack import manifest
from reporting.audit_pack.build import FORMATS, Pack, build, pack_name

__all__ = ["FORMATS", "Pack", "build_pack", "check_pack", "pack_name"]


def build_pack(wh, *, relation, start: date, end: date, out_dir: Path, pg_dsn: str | None,
               formats: Sequence[str] = FORMATS, generated_by: str, checkpoint_store=None,
               **options) -> Pack:
    """Build the pack of ``start``..``end`` (UTC days, inclusive) in ``out_dir``.

    ``wh``: anything with the warehouse's ``query(sql, params)`` (on DuckDB, a reader of the read
    replica); ``relation``: model name -> ``schema.table``; ``pg_dsn``: the state service's
    database as the read-only role (None: PostgreSQL is "not checked"); ``checkpoint_store``:
    ``(s3 client, bucket)`` of the checkpoints, as ``tokenwatch audit verify`` uses them.
    Options: ``keyring`` (chain keys; default ``TOKENWATCH_CHAIN_KEYS``), ``access_log`` (an
    open warehouse or the DuckDB log file; default where the configured target keeps it; None:
    the warehouse ``wh`` itself), ``sources`` (the summary's list of sources)."""
    return build(wh, relation=relation, start=start, end=end, out_dir=out_dir, pg_dsn=pg_dsn,
                 formats=formats, generated_by=generated_by, checkpoint_store=checkpoint_store,
                 **options)


def check_pack(directory: Path) -> list[str]:
    """The pack's problems, one sentence each naming the file; [] when it verifies."""
    return manifest.check(Path(directory))
