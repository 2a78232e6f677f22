"""The KPI charts, rendered from the marts of the built DuckDB warehouse: real PNG and SVG
from vl-convert, the data they draw equal to the marts', the gate's unpublished days marked;
and the generic chart of a query's answer."""

from __future__ import annotations

import shutil
import struct
import zlib
from datetime import date

import duckdb
import pytest

from quality import verdicts
from reporting.charts import chart_for_rows, kpi_charts, style
from reporting.charts.rows import rows_chart
from tests.warehouses import Built, rows
from tokenwatch import wallets

DAY_CHARTS = ("success_rate", "latency", "error_rate", "token_states")
WALLET_CHARTS = ("success_rate", "funnel", "latency", "error_rate")


class ReadOnly:
    """A DuckDB file opened read-only, with the warehouse's ``query`` (``%s`` placeholders)."""

    def __init__(self, path):
        self.con = duckdb.connect(str(path), read_only=True)

    def query(self, sql, params=None):
        return self.con.execute(sql.replace("%s", "?"), params or []).fetchall()


def relation(model: str) -> str:
    from orchestration.defs.dbt.assets import mart_relation

    return mart_relation(model)


@pytest.fixture(scope="module")
def charts(built_duckdb: Built):
    reader = ReadOnly(built_duckdb.path)
    try:
        return {c.name: c for c in kpi_charts(reader, relation)}
    finally:
        reader.con.close()


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk, after checking the image decodes: the pixel data
    inflates to exactly one filter byte plus the row's pixels per row."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
    chunks, i = [], 8
    while i < len(data):
        (length,), kind = struct.unpack(">I", data[i:i + 4]), data[i + 4:i + 8]
        body = data[i + 8:i + 8 + length]
        (crc,) = struct.unpack(">I", data[i + 8 + length:i + 12 + length])
        assert zlib.crc32(kind + body) & 0xFFFFFFFF == crc, f"bad CRC in {kind!r}"
        chunks.append((kind, body))
        i += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    width, height, depth, colour = struct.unpack(">IIBB", chunks[0][1][:10])
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    pixels = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    assert len(pixels) == height * (1 + width * channels * depth // 8)
    return width, height


def datasets(spec: dict) -> list[dict]:
    """Every inline record of a Vega-Lite spec (altair moves them to ``datasets``)."""
    found = [r for values in spec.get("datasets", {}).values() for r in values]

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("data"), dict) and "values" in node["data"]:
                found.extend(node["data"]["values"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk({k: v for k, v in spec.items() if k != "datasets"})
    return found


def test_every_chart_renders_a_png_and_an_svg(charts):
    assert set(charts) == {"success_rate", "funnel", "latency", "error_rate", "token_states"}
    for name, chart in charts.items():
        png = chart.png()
        width, height = png_size(png)
        assert width > 600 and height > 400, (name, width, height)
        assert len(png) > 20_000, f"{name}: a {len(png)}-byte PNG is too small to hold a chart"
        preview = chart.png(style.PREVIEW_SCALE)
        assert png_size(preview)[0] == pytest.approx(width / 2, abs=2)
        svg = chart.svg()
        assert svg.lstrip().startswith("<svg") and chart.title in svg, name
        assert chart.records, f"{name} draws nothing"


def test_the_wallet_charts_name_every_wallet_in_the_registry_colours(charts, world):
    simulated = {wallets.get(w).display_name for w in world.summary["tokens_per_wallet"]}
    for name in WALLET_CHARTS:
        svg = charts[name].svg()
        for wallet in simulated:
            assert wallet in svg, f"{name}: {wallet} is not in the chart"
        # the same colour for a wallet on every chart: the registry's order decides it
        spec = charts[name].spec()
        scales = [node["scale"] for node in _encodings(spec, "color")
                  if node.get("field") == "wallet"]
        assert scales, name
        for scale in scales:
            for wallet_name, colour in zip(scale["domain"], scale["range"], strict=True):
                index = [w.display_name for w in wallets.WALLETS].index(wallet_name)
                assert colour == style.PALETTE[index]


def _encodings(node, channel: str) -> list[dict]:
    found = []
    if isinstance(node, dict):
        if isinstance(node.get("encoding"), dict) and channel in node["encoding"]:
            found.append(node["encoding"][channel])
        for value in node.values():
            found += _encodings(value, channel)
    elif isinstance(node, list):
        for value in node:
            found += _encodings(value, channel)
    return found


def test_the_success_rate_is_the_ratio_of_the_sums(built_duckdb: Built, charts):
    expected = {(str(d), w): (s, r) for w, d, s, r in rows(built_duckdb, """
        select wallet_id, request_date, sum(provision_successes), sum(requests)
        from analytics_wallet.wallet_provisioning_daily group by wallet_id, request_date""")}
    chart = charts["success_rate"]
    got = {(r["day"], r["wallet_id"]): r for r in chart.records}
    assert got.keys() == expected.keys()
    for key, (successes, requests) in expected.items():
        assert (got[key]["successes"], got[key]["requests"]) == (successes, requests)
        assert got[key]["success_rate"] == pytest.approx(successes / requests, abs=1e-12)
    drawn = {(r["day"], r["wallet"]): r["success_rate"] for r in datasets(chart.spec())
             if "success_rate" in r}
    assert drawn == {(d, wallets.get(w).display_name): got[(d, w)]["success_rate"]
                     for d, w in got}
    # the test tells a ratio of sums from a mean of the networks' rates: they differ here
    means = dict(((str(d), w), m) for w, d, m in rows(built_duckdb, """
        select wallet_id, request_date, avg(provision_success_rate)
        from analytics_wallet.wallet_provisioning_daily group by wallet_id, request_date"""))
    assert any(abs(means[k] - got[k]["success_rate"]) > 1e-6 for k in got)


def test_days_the_gate_never_checked_are_marked_unchecked(charts):
    for name in DAY_CHARTS:
        chart = charts[name]
        days = {r["day"] for r in chart.records}
        assert chart.gate == dict.fromkeys(days, verdicts.UNCHECKED), name
        assert style.UNCHECKED_LABEL in chart.svg(), name
        assert style.WITHHELD_LABEL not in chart.svg(), name


def test_a_withheld_day_is_marked_withheld(built_duckdb: Built, tmp_path):
    from ingestion.warehouse.duckdb import DuckDBWarehouse

    copy = tmp_path / "warehouse.duckdb"  # never the fixture's file
    shutil.copy(built_duckdb.path, copy)
    days = sorted(date.fromisoformat(str(d)) for (d,) in rows(built_duckdb, """
        select request_date from analytics_wallet.wallet_provisioning_daily
        union select activity_date from analytics_wallet.wallet_service_daily
        union select calendar_date from analytics_lifecycle.token_state_daily"""))
    assert len(days) >= 3
    withheld = days[1]
    wh = DuckDBWarehouse(copy)
    try:
        verdicts.record(wh, {day: [("wallet/wallet_provisioning_daily:kpi_suite",
                                    day != withheld)] for day in days}, "test-run")
        made = {c.name: c for c in kpi_charts(wh, relation)}
    finally:
        wh.close()
    for name in DAY_CHARTS:
        chart = made[name]
        assert chart.gate == {withheld.isoformat(): verdicts.WITHHELD}, name
        data = datasets(chart.spec())
        bands = {(r["day"], r["gate"]) for r in data if set(r) == {"day", "gate"}}  # a panel each
        assert bands == {(withheld.isoformat(), style.WITHHELD_LABEL)}, name
        points = {r["day"]: r["gate"] for r in data if set(r) != {"day", "gate"}}
        assert points[withheld.isoformat()] == verdicts.WITHHELD
        assert {d for d, g in points.items() if g != verdicts.PASSED} == {withheld.isoformat()}
        svg = chart.svg()
        assert style.WITHHELD_LABEL in svg and style.UNCHECKED_LABEL not in svg, name
    assert withheld.isoformat() in made["funnel"].svg()  # not per day: it says so


def test_chart_for_rows_draws_a_time_series_as_lines(built_duckdb: Built):
    answer = rows(built_duckdb, """
        select request_date as metric_time__day, wallet_id,
               sum(provision_successes) * 1.0 / sum(requests) as provision_success_rate
        from analytics_wallet.wallet_provisioning_daily
        group by request_date, wallet_id order by 1, 2""")
    columns = ["metric_time__day", "wallet_id", "provision_success_rate"]
    units = {"provision_success_rate": "fraction"}
    png = chart_for_rows(columns, answer, metric_units=units, title="Success rate")
    width, height = png_size(png)
    assert width > 600 and height > 300 and len(png) > 10_000
    spec = rows_chart(columns, answer, metric_units=units, title="Success rate").to_dict()
    assert spec["mark"]["type"] == "line"
    assert spec["encoding"]["x"]["type"] == "temporal"
    colour = spec["encoding"]["color"]
    assert colour["title"] == "wallet_id"
    assert set(colour["scale"]["domain"]) == {wallets.get(w).display_name
                                              for _, w, _ in answer}
    assert spec["encoding"]["y"]["title"] == "provision_success_rate (%)"
    assert len(datasets(spec)) == len(answer)


def test_chart_for_rows_draws_dimensions_without_time_as_bars(built_duckdb: Built):
    answer = rows(built_duckdb, """
        select wallet_id, network, sum(requests) as requests
        from analytics_wallet.wallet_provisioning_daily group by 1, 2 order by 1, 2""")
    columns = ["wallet_id", "network", "requests"]
    units = {"requests": "requests"}
    png = chart_for_rows(columns, answer, metric_units=units, title="Requests")
    assert png_size(png)[0] > 600
    spec = rows_chart(columns, answer, metric_units=units, title="Requests").to_dict()
    assert spec["mark"]["type"] == "bar"
    assert spec["encoding"]["x"]["title"] == "wallet_id"
    assert spec["encoding"]["color"]["title"] == "network"
    assert sum(r["c2"] for r in datasets(spec)) == sum(r[2] for r in answer)


@pytest.mark.parametrize(("columns", "answer", "message"), [
    (["metric_time__day", "requests"], [], "no rows"),
    (["wallet_id", "network"], [("apple_pay", "visa")], "none of the columns"),
    (["wallet_id", "requests"], [("apple_pay", None), ("google_pay", None)], "null"),
    (["wallet_id", "requests"], [("apple_pay",)], "row 0 has 1 values for 2 columns"),
    (["wallet_id", "requests"], [("apple_pay", "many")], "not a number"),
])
def test_chart_for_rows_says_when_there_is_nothing_to_draw(columns, answer, message):
    with pytest.raises(ValueError, match=message):
        chart_for_rows(columns, answer, metric_units={"requests": "requests"}, title="t")


def test_the_charts_draw_the_same_on_postgresql(built_postgres: Built, charts):
    """The same world built on PostgreSQL: every chart draws the same records (numbers come
    back as Decimal there; dates as dates)."""
    from ingestion.warehouse.postgres import PostgresWarehouse

    wh = PostgresWarehouse(built_postgres.dsn)
    try:
        made = {c.name: c for c in kpi_charts(wh, relation)}
    finally:
        wh.close()
    for name, chart in charts.items():
        assert made[name].gate == chart.gate, name

        def key(r):
            return tuple(str(r.get(k)) for k in ("day", "wallet_id", "state", "percentile",
                                                 "class", "step"))

        got = sorted(made[name].records, key=key)
        expected = sorted(chart.records, key=key)
        assert len(got) == len(expected), name
        for a, b in zip(got, expected, strict=True):
            assert a.keys() == b.keys(), name
            for k in a:
                if isinstance(b[k], float):
                    assert a[k] == pytest.approx(b[k], rel=1e-9), (name, k, a, b)
                else:
                    assert a[k] == b[k], (name, k, a, b)
