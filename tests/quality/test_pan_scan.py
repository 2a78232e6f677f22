"""The PAN scan on DuckDB and PostgreSQL warehouses: Luhn-valid card numbers planted in text
and JSON columns of raw and mart tables are found and reported masked; hex digests, UUIDs,
Luhn-invalid and over-long digit runs are not."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime

import pytest

from quality.pan_scan import _MATCH, PREFILTER, mask, redact, scan_for_pans
from state_service.pan import _DIGIT_RUN, find_pan_like

TARGETS = ["duckdb", "postgres"]
PANS = ["4111111111111111", "5555555555554444", "378282246310005", "4012888888881881"]
NOW = datetime(2024, 3, 1, tzinfo=UTC)
MART = "marts.wallet_provisioning_daily"


def _plant(wh) -> None:
    wh.execute("insert into raw.quarantine (source, location, raw_text, reason, _loaded_at) "
               "values (%s, %s, %s, %s, %s)", ["apigw_logs", "s3://lake/apigw/part-1.json#7",
                                               '{"card": "4111111111111111"}', "bad json", NOW])
    wh.execute("insert into raw.wallet_events (event_id, event_type, extra, _source_location) "
               "values (%s, %s, cast(%s as json), %s)",
               ["ev-1", "token_used", '{"pan": "5555555555554444", "ts": 1709251200000}',
                "kinesis:wallet-events/shard-0/42"])
    wh.execute("insert into raw.apigw_logs (request_id, route, status, _source_location) values "
               "(%s, %s, %s, %s)", ["req-4012888888881881", "POST /v1/provision", 200,
                                    "s3://lake/4012888888881881.json#1"])
    wh.execute("create schema if not exists marts")
    wh.execute(f"create table {MART} (wallet_network_day_id text, wallet_id text, "
               "requests bigint, note text)")
    wh.execute(f"insert into {MART} values (%s, %s, %s, %s)",
               ["k-1", "apple_pay", 4111111111111111, "card 378282246310005 seen"])
    _decoys(wh)


def _decoys(wh) -> None:
    """Digit runs that are no PAN: inside hex digests, in UUIDs, Luhn-invalid, too long."""
    hex_digest = "ab4111111111111111cd" + "e0" * 22
    wh.execute("insert into raw.token_state_transitions (transition_id, token_ref, version, "
               "event_id, to_state, reason_code, prev_hash, row_hash, xact_id, "
               "_source_location) values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
               [1, "41111111111111110000", 1, "0e8c2a1f-4111-1111-1111-111111111111",
                "TokenRequested", "4111111111111112", "4111111111111111" + "f" * 48,
                hex_digest, 4111111111111111, "pg:token_state_transitions/1"])
    wh.execute("insert into raw._ingest_state (key, value, updated_at) values (%s, %s, %s)",
               ["kinesis:wallet-events:shard-0",
                "49590338271490256608559692538361571095921575989136588898", NOW])
    wh.execute("insert into raw.wallet_events (event_id, event_type, extra, _source_location) "
               "values (%s, %s, cast(%s as json), %s)",
               ["ev-2", "token_used", '{"ms": 1709251200000, "order": "4111111111111112"}',
                "kinesis:wallet-events/shard-0/43"])


@pytest.mark.parametrize("target", TARGETS)
def test_planted_pans_are_found_and_masked(warehouse_factory, target):
    wh = warehouse_factory(target)
    _plant(wh)
    result = scan_for_pans(wh, [MART])
    assert not result.passed
    found = {(h["table"], h["column"], h["locator"], tuple(h["masked"]))
             for h in result.metadata["hits"]}
    assert found == {
        ("raw.quarantine", "raw_text", "s3://lake/apigw/part-1.json#7", ("411111******1111",)),
        ("raw.wallet_events", "extra", "kinesis:wallet-events/shard-0/42",
         ("555555******4444",)),
        ("raw.apigw_logs", "request_id", "s3://lake/401288******1881.json#1",
         ("401288******1881",)),
        ("raw.apigw_logs", "_source_location", "s3://lake/401288******1881.json#1",
         ("401288******1881",)),
        (MART, "note", "k-1", ("378282*****0005",)),
    }
    assert result.metadata["pan_like_cells"] == 5
    assert result.metadata["pan_like_cells_by_column"]["raw.apigw_logs.request_id"] == 1
    assert "5 cells hold PAN-like values" in result.summary
    everything = result.summary + json.dumps(result.metadata)
    for pan in PANS:
        assert pan not in everything  # never echoed, not even in a locator


@pytest.mark.parametrize("target", TARGETS)
def test_hashes_uuids_and_luhn_invalid_runs_pass(warehouse_factory, target):
    wh = warehouse_factory(target)
    _decoys(wh)
    result = scan_for_pans(wh)
    assert result.passed, result.summary
    assert result.metadata["pan_like_cells"] == 0 and result.metadata["hits"] == []
    assert len(result.metadata["tables_scanned"]) == 7
    # the database let through only the Luhn-invalid standalone run and the ms timestamp
    assert result.metadata["candidate_rows"] == 2
    assert "no PAN-like value" in result.summary


def test_a_locator_column_can_be_chosen(warehouse_factory):
    wh = warehouse_factory("duckdb")
    _plant(wh)
    result = scan_for_pans(wh, [MART], include_raw=False, locators={MART: "wallet_id"})
    assert [(h["column"], h["locator"]) for h in result.metadata["hits"]] == [
        ("note", "apple_pay")]
    assert result.metadata["tables_scanned"] == [MART]


def test_tables_must_exist_and_be_qualified(warehouse_factory):
    wh = warehouse_factory("duckdb")
    with pytest.raises(ValueError, match="schema-qualified"):
        scan_for_pans(wh, ["wallet_provisioning_daily"])
    with pytest.raises(ValueError, match="marts.nowhere"):
        scan_for_pans(wh, ["marts.nowhere"])


@pytest.mark.parametrize("target", TARGETS)
def test_the_database_prefilter_lets_through_exactly_the_standalone_digit_runs(
        warehouse_factory, target):
    """The pre-filter may never hide a PAN: on random text it matches exactly where
    ``find_pan_like``'s digit-run pattern does."""
    rng = random.Random(6)
    alphabet = "0123456789" * 8 + "abcfXZ-_ :/{}\"'"
    texts = []
    for i in range(3000):
        text = "".join(rng.choices(alphabet, k=rng.randint(5, 60)))
        if i % 3 == 0:
            cut = rng.randint(0, len(text))
            text = text[:cut] + rng.choice(PANS) + text[cut:]
        texts.append(text)
    wh = warehouse_factory(target)
    predicate = _MATCH[wh.name].format("s", PREFILTER)
    placeholder = "cast(%s as text[])" if target == "postgres" else "%s"
    rows = wh.query(f"select s, {predicate} from unnest({placeholder}) as t(s)", [texts])
    assert len(rows) == len(texts)
    assert all(bool(match) == bool(_DIGIT_RUN.search(text)) for text, match in rows)
    assert any(find_pan_like(text) for text, _ in rows)  # the sample holds real hits


def test_masking_and_the_prefilter_agree_with_the_luhn_rule():
    assert mask("4111111111111111") == "411111******1111"
    assert mask("378282246310005") == "378282*****0005"
    assert redact("a 4111111111111111 b 4111111111111112") == (
        "a 411111******1111 b 4111111111111112")
    assert "{13,19}" in PREFILTER


def test_snowflake_scans_with_its_own_regexp_function(warehouse_factory):
    """On fakesnow's server: Snowflake spells names in capitals and keeps JSON as VARIANT."""
    wh = warehouse_factory("snowflake")
    wh.execute("insert into raw.quarantine (source, location, raw_text, reason) "
               "values (%s, %s, %s, %s)", ["apigw_logs", "loc-1", "card 4111111111111111", "r"])
    wh.execute("insert into raw.wallet_events (event_id, extra) select %s, parse_json(%s)",
               ["ev-1", '{"pan": "5555555555554444", "order": "4111111111111112"}'])
    result = scan_for_pans(wh)
    assert not result.passed
    assert sorted((h["table"], h["column"], h["locator"], h["masked"][0])
                  for h in result.metadata["hits"]) == [
        ("raw.quarantine", "raw_text", "loc-1", "411111******1111"),
        ("raw.wallet_events", "extra", None, "555555******4444")]
