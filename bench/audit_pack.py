"""Benchmark: a month's audit pack on a large DuckDB warehouse, its time and peak RSS.

The pack (``reporting.audit_pack.build_pack``) is built in a fresh process from the warehouse
file, opened read-only (``--warehouse PATH``, e.g. ``bench/transform.py --keep``'s 1M-token
one), without the PostgreSQL side (the bench warehouse has no state service database: the
pack says "not checked" for it). Prints seconds and the process's peak RSS (sampled), and, as
the baseline of the same run, the same process doing only the imports and opening the file.

    .venv/bin/python bench/audit_pack.py --warehouse PATH [--from 2026-10-01] [--to 2026-10-31]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.watched import run_watched  # noqa: E402

CHILD = """
import json, sys
from datetime import date
from pathlib import Path
sys.path.insert(0, {root!r})
from ingestion.warehouse.duckdb import connect
from reporting.api.relations import relation
from reporting.tableau.extract import _DuckDBReader
con = connect({path!r}, read_only=True)
if {build!r}:
    from reporting.audit_pack import build_pack
    pack = build_pack(_DuckDBReader(con), relation=relation, start=date.fromisoformat({start!r}),
                      end=date.fromisoformat({end!r}), out_dir=Path({out!r}), pg_dsn=None,
                      generated_by="bench/audit_pack.py")
    files = [p for p in pack.directory.rglob("*") if p.is_file()]
    print(json.dumps({{"controls": pack.controls, "files": len(files),
                      "bytes": sum(p.stat().st_size for p in files)}}))
else:
    import reporting.audit_pack  # noqa: F401
    print(json.dumps({{}}))
"""


def run(code: str) -> tuple[float, int, dict]:
    # the child writes little (one JSON line, or a traceback): the pipes cannot fill
    seconds, peak, proc = run_watched([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"the pack failed:\n{err[-4000:]}")
    return seconds, peak, json.loads(out.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", required=True, type=Path)
    parser.add_argument("--from", dest="start", default="2026-10-01")
    parser.add_argument("--to", dest="end", default="2026-10-31")
    args = parser.parse_args()
    size = args.warehouse.stat().st_size // (1024 * 1024)
    with tempfile.TemporaryDirectory(prefix="tokenwatch-bench-pack-") as out:
        params = {"root": str(ROOT), "path": str(args.warehouse), "start": args.start,
                  "end": args.end, "out": out}
        base_s, base_rss, _ = run(CHILD.format(build=False, **params))
        pack_s, pack_rss, found = run(CHILD.format(build=True, **params))
    print(f"warehouse {args.warehouse} ({size:,} MB), period {args.start}..{args.end}")
    print(f"baseline (imports, open the file):  {base_s:7.1f} s   peak RSS {base_rss:,} MB")
    print(f"month's audit pack:                 {pack_s:7.1f} s   peak RSS {pack_rss:,} MB")
    print(f"pack / baseline:                    {pack_s / base_s:7.1f}x  "
          f"RSS {pack_rss / base_rss:.1f}x")
    print(f"files {found['files']}, {found['bytes'] / 1e6:.1f} MB; controls "
          + ", ".join(f"{k} {v}" for k, v in found["controls"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
