"""The local Datadog intake over real HTTP, driven by the real ``datadog`` package."""

from __future__ import annotations

import json
import time

import datadog
import httpx
import pytest
from datadog import api

from sandbox.intake import IntakeThread, read_records

KEY = "intake-test-key"


@pytest.fixture()
def intake(tmp_path):
    with IntakeThread(tmp_path / "records.jsonl", api_key=KEY) as it:
        yield it


@pytest.fixture()
def dd(intake):
    datadog.initialize(api_key=KEY, app_key="app", api_host=intake.url, mute=False)
    yield api
    datadog.initialize(api_key=None, app_key=None, api_host=None)


def _post(intake, path, body, key=KEY):
    headers = {"DD-API-KEY": key} if key else {}
    return httpx.post(intake.url + path, json=body, headers=headers, timeout=5)


def test_missing_or_wrong_key_is_forbidden(intake):
    body = {"series": [{"metric": "tokenwatch.x", "points": [[1, 1.0]]}]}
    assert _post(intake, "/api/v1/series", body, key=None).status_code == 403
    assert _post(intake, "/api/v1/series", body, key="other").status_code == 403
    assert httpx.get(intake.url + "/api/v1/validate").status_code == 403
    assert read_records(intake.records) == []


@pytest.mark.parametrize(("path", "body", "reason"), [
    ("/api/v1/series", {"series": [{"metric": "1bad", "points": [[1, 1]]}]}, "not a valid metric"),
    ("/api/v1/series", {"series": [{"metric": "a-b", "points": [[1, 1]]}]}, "not a valid metric"),
    ("/api/v1/series", {"series": [{"metric": "a" * 201, "points": [[1, 1]]}]}, "200 characters"),
    ("/api/v1/series", {"series": [{"metric": "ok.name", "points": [[1, "x"]]}]},
     "series[0].points[0]"),
    ("/api/v1/series", {"series": [{"metric": "ok.name", "points": []}]}, "non-empty"),
    ("/api/v1/series", {"metrics": []}, '"series" list'),
    ("/api/v2/series", {"series": [{"metric": "ok.name", "points": [[1, 2]]}]},
     "series[0].points[0]"),
    ("/api/v2/series", {"series": [{"metric": "ok.name", "type": 9,
                                    "points": [{"timestamp": 1, "value": 2}]}]}, "type"),
    ("/api/v1/events", {"title": "no text"}, "event.text"),
    ("/api/v1/monitor", {"type": "metric alert", "name": "n"}, "monitor.query"),
    ("/api/v1/dashboard", {"title": "t", "layout_type": "grid", "widgets": []}, "layout_type"),
])
def test_malformed_payloads_get_400_with_a_reason(intake, path, body, reason):
    resp = _post(intake, path, body)
    assert resp.status_code == 400
    assert reason in resp.json()["errors"][0]
    assert read_records(intake.records) == []


def test_not_json_is_400(intake):
    resp = httpx.post(intake.url + "/api/v1/series", content=b"{nope",
                      headers={"DD-API-KEY": KEY, "Content-Type": "application/json"})
    assert resp.status_code == 400 and "not valid JSON" in resp.json()["errors"][0]


def test_series_sent_by_the_datadog_package_is_recorded(intake, dd):
    ts = int(time.time()) - 3600
    resp = dd.Metric.send(metric="tokenwatch.provisioning.success_rate", points=[(ts, 0.93)],
                          tags=["env:test", "wallet:apple_pay"], type="gauge")
    assert resp == {"status": "ok"}
    dd.Metric.send(metrics=[{"metric": "tokenwatch.tokens.active", "points": [(ts, 1200)]}],
                   compress_payload=True)  # deflate-encoded, as the package sends it
    recs = read_records(intake.records, "/api/v1/series")
    assert [r["body"]["series"][0]["metric"] for r in recs] == [
        "tokenwatch.provisioning.success_rate", "tokenwatch.tokens.active"]
    first = recs[0]["body"]["series"][0]
    assert first["points"] == [[ts, 0.93]]
    assert first["tags"] == ["env:test", "wallet:apple_pay"]
    assert recs[0]["points"] == 1


def test_v2_series_and_events(intake, dd):
    body = {"series": [{"metric": "tokenwatch.service.latency_p99_ms", "type": 3,
                        "points": [{"timestamp": 1764000000, "value": 412.5}],
                        "tags": ["wallet:google_pay"]}]}
    resp = _post(intake, "/api/v2/series", body)
    assert resp.status_code == 202 and resp.json() == {"errors": []}
    event = dd.Event.create(title="KPI publication withheld", text="check failed",
                            alert_type="warning", tags=["env:test"])
    assert event["status"] == "ok"
    assert read_records(intake.records, "/api/v2/series")[0]["body"] == body
    assert read_records(intake.records, "/api/v1/events")[0]["body"]["title"] == (
        "KPI publication withheld")


def test_dashboards_and_monitors_update_in_place_and_survive_a_restart(intake, dd, tmp_path):
    dash = {"title": "Wallet Performance", "layout_type": "ordered", "widgets": [
        {"definition": {"type": "timeseries", "requests": [{"q": "avg:tokenwatch.x{*}"}]}}]}
    created = dd.Dashboard.create(**dash)
    updated = dd.Dashboard.update(created["id"], **dict(dash, description="v2"))
    assert updated["id"] == created["id"] and updated["description"] == "v2"
    assert [d["title"] for d in dd.Dashboard.get_all()["dashboards"]] == ["Wallet Performance"]
    mon = dd.Monitor.create(type="metric alert", name="success rate drop",
                            query="avg(last_1h):avg:tokenwatch.x{*} < 0.8", message="@ops")
    dd.Monitor.update(mon["id"], type="metric alert", name="success rate drop",
                      query="avg(last_1h):avg:tokenwatch.x{*} < 0.7", message="@ops")
    assert [m["query"] for m in dd.Monitor.get_all()] == ["avg(last_1h):avg:tokenwatch.x{*} < 0.7"]
    assert httpx.get(f"{intake.url}/api/v1/monitor/999999",
                     headers={"DD-API-KEY": KEY}).status_code == 404
    with IntakeThread(intake.records, api_key=KEY) as again:  # replays its records
        listed = httpx.get(f"{again.url}/api/v1/dashboard", headers={"DD-API-KEY": KEY}).json()
        assert [(d["id"], d["description"]) for d in listed["dashboards"]] == [
            (created["id"], "v2")]
        monitors = httpx.get(f"{again.url}/api/v1/monitor", headers={"DD-API-KEY": KEY}).json()
        assert [m["id"] for m in monitors] == [mon["id"]]


def _get(url, path):
    resp = httpx.get(url + path, headers={"DD-API-KEY": KEY}, timeout=5)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_a_restart_after_series_and_events_keeps_dashboards_and_monitors_and_their_ids(
        tmp_path):
    """Series and events are in the records file too: replaying it on start must skip them
    (they are not objects), and ids issued before the restart are never issued again."""
    records = tmp_path / "records.jsonl"
    widgets = [{"definition": {"type": "timeseries", "requests": [{"q": "avg:tokenwatch.x{*}"}]}}]
    query = "avg(last_1h):avg:tokenwatch.x{*} < 0.8"
    with IntakeThread(records, api_key=KEY) as first:
        datadog.initialize(api_key=KEY, app_key="app", api_host=first.url, mute=False)
        try:
            ts = int(time.time()) - 3600
            assert api.Metric.send(metric="tokenwatch.tokens.active", points=[(ts, 1200)],
                                   compress_payload=True) == {"status": "ok"}
            assert _post(first, "/api/v2/series", {"series": [{
                "metric": "tokenwatch.service.latency_p99_ms", "type": 3,
                "points": [{"timestamp": ts, "value": 412.5}]}]}).status_code == 202
            event = api.Event.create(title="KPIs published", text="11 points", tags=["env:t"])
            kept = api.Dashboard.create(title="Kept", layout_type="ordered", widgets=widgets)
            gone = api.Dashboard.create(title="Gone", layout_type="ordered", widgets=widgets)
            api.Dashboard.delete(gone["id"])
            api.Dashboard.update(kept["id"], title="Kept", layout_type="ordered",
                                 widgets=widgets, description="v2")
            mon = api.Monitor.create(type="metric alert", name="kept", query=query)
            last = api.Monitor.create(type="metric alert", name="gone", query=query)
            api.Monitor.delete(last["id"])  # the highest monitor id, no longer listed
            api.Event.create(title="after the objects", text="an event, last in the file")
        finally:
            datadog.initialize(api_key=None, app_key=None, api_host=None)
        series_before = read_records(records, "/api/v1/series") + read_records(
            records, "/api/v2/series")
        dashboards_before = _get(first.url, "/api/v1/dashboard")["dashboards"]
        monitors_before = _get(first.url, "/api/v1/monitor")
    assert len(series_before) == 2 and event["status"] == "ok"

    with IntakeThread(records, api_key=KEY) as again:  # replays the same records
        assert _get(again.url, "/api/v1/dashboard")["dashboards"] == dashboards_before
        assert [(d["id"], d["description"]) for d in dashboards_before] == [(kept["id"], "v2")]
        monitors = _get(again.url, "/api/v1/monitor")
        assert monitors == monitors_before  # no event came back as a monitor
        assert [m["id"] for m in monitors] == [mon["id"]]
        assert _get(again.url, f"/api/v1/monitor/{mon['id']}")["name"] == "kept"
        assert httpx.get(f"{again.url}/api/v1/monitor/{event['event']['id']}",
                         headers={"DD-API-KEY": KEY}).status_code == 404
        # the series are still there, as recorded, and new ones are accepted after them
        assert read_records(records, "/api/v1/series") + read_records(
            records, "/api/v2/series") == series_before
        assert _post(again, "/api/v1/series", {"series": [
            {"metric": "tokenwatch.tokens.active", "points": [[ts, 1300]]}]}).status_code == 202
        assert len(read_records(records, "/api/v1/series")) == 2
        # new objects get new ids, above every id issued before (deleted ones included)
        dash = _post(again, "/api/v1/dashboard", {"title": "New", "layout_type": "ordered",
                                                  "widgets": widgets}).json()
        assert dash["id"] not in (kept["id"], gone["id"])
        assert dash["id"] > max(kept["id"], gone["id"])
        new = _post(again, "/api/v1/monitor", {"type": "metric alert", "name": "new",
                                               "query": query}).json()
        assert new["id"] == last["id"] + 1 > mon["id"]  # an event's id is no monitor's


def test_a_record_torn_by_a_kill_is_cut_and_the_intake_starts(tmp_path):
    """An intake killed mid-write leaves half a line: the next start cuts it (that write was
    never answered) and keeps everything before it; the next record starts on its own line."""
    records = tmp_path / "records.jsonl"
    with IntakeThread(records, api_key=KEY) as first:
        created = httpx.post(f"{first.url}/api/v1/monitor", headers={"DD-API-KEY": KEY},
                             json={"name": "kept", "type": "metric alert",
                                   "query": "avg(last_1h):avg:tokenwatch.x{*} < 0.8"})
        assert created.status_code == 200, created.text
    whole = records.read_bytes()
    records.write_bytes(whole + b'{"path": "/api/v1/monitor", "method": "POST", "bo')
    with IntakeThread(records, api_key=KEY) as second:
        assert _get(second.url, f"/api/v1/monitor/{created.json()['id']}")["name"] == "kept"
        again = httpx.post(f"{second.url}/api/v1/monitor", headers={"DD-API-KEY": KEY},
                           json={"name": "next", "type": "metric alert",
                                 "query": "avg(last_1h):avg:tokenwatch.x{*} < 0.8"})
        assert again.status_code == 200 and again.json()["id"] > created.json()["id"]
    assert records.read_bytes().startswith(whole)
    assert all(json.loads(line) for line in records.read_text().splitlines())
