"""The demo's charts step: the KPI charts rendered from the warehouse's read replica (opened
read-only, left as it was) into ``$TOKENWATCH_HOME/charts``, where the demo says they are."""

from __future__ import annotations

import hashlib
import shutil

from reporting.charts import png
from sandbox.demo import steps
from tests.warehouses import Built


def test_the_demo_renders_the_charts_from_the_read_replica(built_duckdb: Built, tmp_path,
                                                           monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    replica = home / "warehouse-read.duckdb"
    shutil.copy(built_duckdb.path, replica)
    before = hashlib.sha256(replica.read_bytes()).hexdigest()
    monkeypatch.setenv("TOKENWATCH_HOME", str(home))
    monkeypatch.setenv("TOKENWATCH_DUCKDB_PATH", str(home / "nobody-writes-here.duckdb"))
    monkeypatch.setenv("TOKENWATCH_DUCKDB_REPLICA_PATH", str(replica))

    written = steps.render_charts()

    names = {"success_rate", "funnel", "latency", "error_rate", "token_states"}
    assert {f.chart.name for f in written} == names
    assert sorted(p.name for p in (home / "charts").iterdir()) == sorted(
        [f"{n}.png" for n in names] + [f"{n}.svg" for n in names])
    for files in written:
        assert files.png.parent == home / "charts"
        width, height = png.size(files.png.read_bytes())
        assert width > 600 and height > 400
        assert files.chart.title in files.svg.read_text()
    assert hashlib.sha256(replica.read_bytes()).hexdigest() == before  # read, never written
    assert not (home / "nobody-writes-here.duckdb").exists()  # the loaders' file: untouched
