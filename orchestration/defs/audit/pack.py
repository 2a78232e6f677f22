"""The audit pack on the compliance schedule, and the check that the daily review ran.

``audit/pack`` builds, for each day of its partition range (the compliance schedule runs the
previous day), that day's pack (``reporting.audit_pack.build_pack``); when the day is the last
of its month, the month's pack too (the run of the 1st covers the previous month). It runs
after the audit marts and the checkpoint (its deps) and reads through the warehouse and the
sources resources (PostgreSQL as ``tokenwatch_reader``; the checkpoints' bucket).

Packs are written under ``TOKENWATCH_AUDIT_PACK_DIR`` (default ``$TOKENWATCH_HOME/audit-packs``),
one folder per pack. In prod that folder is a staging area: with ``TOKENWATCH_AUDIT_PACK_BUCKET``
set, every file of a pack is then uploaded to that bucket (under the folder's name), the copy
auditors read; the bucket (Object Lock, lifecycle) is the operator's to provision.

Failures are reported, never hidden: a pack that raises fails the asset (and sends an
``audit:pack`` error event); a pack whose evidence fails a control is still written (it is the
evidence), the asset materializes with ``passed: false``, its event is an error and
``tokenwatch.audit.pack.controls_failed`` is above zero (the failed-pack monitor, 10.7.2).

``daily_review_ran`` (on the pack; severity ERROR, not blocking) checks that the daily pack of
the partition's day and of the day before exist and verify (``check_pack``): a missed or
broken review of yesterday shows on today's run. It sends how long ago the last day reviewed
without a gap ended (``tokenwatch.audit.review.age_hours``; the missed-review monitor alerts
above 26 hours, and when it stops coming).
"""


from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg

from orchestration.check_results import by_partition
from orchestration.defs.audit.assets import _store
from orchestration.defs.audit.retention import mart_key
from orchestration.defs.gate.checks import days_of
from orchestration.partitions import DAILY, start_day
from orchestration.resources import (
    WAREHOUSE_POOL,
    DatadogResource,
    SourcesResource,
    WarehouseResource,
)
from tokenwatch import config

AUDIT_MARTS = ("audit_token_transitions", "audit_token_chains", "audit_exceptions",
               "audit_daily_summary", "audit_quarantine_summary")
GENERATED_BY = "dagster:compliance"
RUNBOOK = {
    "pack": "open the asset audit/pack in Dagster: an exception names what broke (fix it and "
            "re-run the partition); a failed control names its evidence in the pack's summary "
            "page: investigate each finding and record its resolution.",
    "review": "yesterday's daily audit pack is missing or does not verify: re-run the "
              "compliance job for that day (`tokenwatch audit check-pack DIR` names a broken "
              "file); a pack that was altered is an incident.",
}


def packs_for(day: date) -> list[tuple[str, date, date]]:
    """(period, first day, last day) of the packs a partition's day builds: the day's, and the
    month's when the day is the last of its month."""
    packs = [("day", day, day)]
    if (day + timedelta(days=1)).day == 1:
        packs.append(("month", day.replace(day=1), day))
    return packs


def pack_label(period: str, start: date, end: date) -> str:
    """How events name a pack: its day, or its month (2026-11)."""
    return start.isoformat() if period == "day" else f"{start:%Y-%m}"


def pack_directory(root: Path, start: date, end: date) -> Path:
    """Where ``build_pack`` writes the pack of ``start``..``end`` under ``root`` (its name is
    the pack's rule: ``reporting.audit_pack.pack_name``)."""
    from reporting.audit_pack import pack_name
    from reporting.audit_pack.evidence import Period

    return root / pack_name(Period(start, end))


def chain_findings(pack) -> dict[str, int]:
    """Chain findings per side (postgres, warehouse): the summary's ``chain_findings`` when the
    pack gives them (a side it did not check left out: no false zero), else the rows of the
    pack's own evidence file ``chain_findings.csv`` by its ``side`` column."""
    import csv

    given = pack.summary.get("chain_findings")
    if isinstance(given, dict):
        return {side: int(n) for side, n in given.items()
                if side in ("postgres", "warehouse") and isinstance(n, int)}
    found = {"postgres": 0, "warehouse": 0}
    with (pack.directory / "chain_findings.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            found["postgres" if row["side"] == "postgresql" else "warehouse"] += 1
    return found


def upload(s3, bucket: str, directory: Path) -> int:
    """Every file of the pack to ``s3://bucket/<folder name>/...``; the number of files."""
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    for path in files:
        s3.upload_file(str(path), bucket, f"{directory.name}/{path.relative_to(directory)}")
    return len(files)


@dg.asset(key=["audit", "pack"], group_name="audit", partitions_def=DAILY,
          backfill_policy=dg.BackfillPolicy.single_run(), kinds={"python", "pdf"},
          deps=[*(mart_key(m) for m in AUDIT_MARTS), ["raw", "chain_checkpoints"]],
          pool=WAREHOUSE_POOL,
          description="The audit pack of each day (and of the month, on its last day): "
                      "summary, chain verification from PostgreSQL and the warehouse, "
                      "reconciliation, exceptions, access records, the PCI DSS 10 mapping, as "
                      "PDF and HTML with CSV evidence and a manifest, under "
                      "TOKENWATCH_AUDIT_PACK_DIR.")
def audit_pack(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
               sources: SourcesResource, datadog: DatadogResource) -> dg.MaterializeResult:
    from orchestration.defs.dbt.assets import mart_relation
    from reporting.audit_pack import build_pack
    from reporting.audit_pack.manifest import sha256 as manifest_sha256
    from reporting.datadog.controls import pack_points, send
    from reporting.datadog.events import audit_failed, audit_pack_built

    root = config.audit_pack_dir()
    bucket = config.settings().audit_pack_bucket
    world = sources.sources()
    options, env = datadog.options(), datadog.env_tag()
    built = []
    with warehouse.open() as wh:
        for day in days_of(context.partition_time_window):
            for period, start, end in packs_for(day):
                label = pack_label(period, start, end)
                try:
                    pack = build_pack(wh, relation=mart_relation, start=start, end=end,
                                      out_dir=root, pg_dsn=world.pg_dsn,
                                      generated_by=GENERATED_BY,
                                      checkpoint_store=_store(sources))
                except Exception as exc:
                    audit_failed(label, "pack", f"the {period} pack {start}..{end} could not "
                                 f"be built: {type(exc).__name__}: {exc}", options, env=env,
                                 runbook=RUNBOOK["pack"])
                    raise
                uploaded = upload(world.s3, bucket, pack.directory) if bucket else 0
                location = (f"s3://{bucket}/{pack.directory.name}/" if bucket
                            else str(pack.directory))
                send(pack_points(period, pack.controls, chain_findings(pack), env),
                     options)
                audit_pack_built(label, period, pack.controls, location, options, env=env)
                failed = sorted(c for c, v in pack.controls.items() if v == "fail")
                (context.log.warning if failed else context.log.info)(
                    f"{period} pack {start}..{end}: {location}"
                    + (f"; failed controls: {failed}" if failed else "; every control passed"))
                built.append({"period": period, "start": start.isoformat(),
                              "end": end.isoformat(), "path": str(pack.directory),
                              "location": location, "uploaded_files": uploaded,
                              "passed": pack.passed, "controls": dict(pack.controls),
                              "failed_controls": failed,
                              "manifest_sha256": manifest_sha256(pack.manifest)})
    daily = [b for b in built if b["period"] == "day"]
    return dg.MaterializeResult(metadata={
        "pack_path": dg.MetadataValue.path(daily[-1]["path"]),
        "passed": all(b["passed"] for b in built),
        "controls": dg.MetadataValue.json(daily[-1]["controls"]),
        "failed_controls": dg.MetadataValue.json(sorted({c for b in built
                                                         for c in b["failed_controls"]})),
        "manifest_sha256": daily[-1]["manifest_sha256"],
        "packs": dg.MetadataValue.json(built)})


def review_status(root: Path, day: date, first_day: date,
                  now: datetime | None = None) -> tuple[bool, str, dict]:
    """Whether the daily packs of ``day`` and of the day before (unless before ``first_day``)
    exist and verify; a line saying so; and what was seen, with ``age_hours``: hours since the
    end of the last day reviewed without a gap (the day before first when its pack fails:
    about 2.5 h after a good 02:30 run, over 26 h once a review is missed)."""
    from reporting.audit_pack import check_pack

    now = now or datetime.now(UTC)
    days = [d for d in (day - timedelta(days=1), day) if d >= first_day]
    seen, problems, reviewed_until = {}, [], days[0]  # the start of the first day
    gap = False
    for d in days:
        directory = pack_directory(root, d, d)
        if not (directory / "manifest.json").is_file():
            seen[d.isoformat()] = "missing"
            problems.append(f"no daily pack for {d} in {root}")
        else:
            found = check_pack(directory)
            seen[d.isoformat()] = found[:10] or "verified"
            if found:
                problems.append(f"the pack of {d} does not verify: {'; '.join(found[:5])}")
        gap = gap or seen[d.isoformat()] != "verified"
        if not gap:
            reviewed_until = d + timedelta(days=1)
    since = datetime.combine(reviewed_until, datetime.min.time(), UTC)
    age = round((now - since).total_seconds() / 3600, 2)
    metadata = {"packs": seen, "age_hours": age, "reviewed_until": reviewed_until.isoformat(),
                "pack_dir": str(root)}
    if problems:
        return False, "daily review: " + "; ".join(problems), metadata
    return True, (f"daily review: the packs of {', '.join(map(str, days))} exist and verify "
                  f"(reviewed until {reviewed_until}, {age} h ago)"), metadata


@dg.asset_check(asset=audit_pack, name="daily_review_ran", blocking=False,
                partitions_def=DAILY,
                description="The daily audit packs of this day and the day before exist and "
                            "verify (check_pack): the automated daily review ran (PCI DSS "
                            "10.4.1.1).")
def daily_review_ran(context: dg.AssetCheckExecutionContext,
                     datadog: DatadogResource) -> Iterator:
    from reporting.datadog.controls import review_point, send
    from reporting.datadog.events import audit_failed

    root = config.audit_pack_dir()
    first = start_day()
    statuses = {day: review_status(root, day, first)
                for day in days_of(context.partition_time_window)}
    key = dg.AssetCheckKey(audit_pack.key, "daily_review_ran")
    yield from by_partition(context, key, {
        day.isoformat(): dg.AssetCheckResult(
            passed=passed, severity=dg.AssetCheckSeverity.ERROR, description=line[:2000],
            metadata={"partition": day.isoformat(), **{
                k: dg.MetadataValue.json(v) if isinstance(v, dict) else v
                for k, v in seen.items()}})
        for day, (passed, line, seen) in statuses.items()})
    options, env = datadog.options(), datadog.env_tag()
    send([review_point(statuses[max(statuses)][2]["age_hours"], env)], options)
    for day, (passed, line, _) in sorted(statuses.items()):
        if not passed:
            context.log.warning(line)
            audit_failed(day.isoformat(), "review", line, options, env=env,
                         runbook=RUNBOOK["review"])


PACK_ASSETS = [audit_pack]
PACK_CHECKS = [daily_review_ran]
