"""The PAN scan on DuckDB and PostgreSQL warehouses (and fakesnow's Snowflake): card numbers
planted in text and JSON columns of raw and mart tables, however written (every PAN-like value
of the case table ``tests/pan_cases.py``), are found and reported masked; hex digests, UUIDs,
Luhn-invalid and over-long digit runs, and the case table's other values, are not. The
database's pre-filter never hides a text the Python rule finds a run in."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime

import pytest

import tokenwatch.pan
from ingestion.raw_schema import TABLES
from quality.pan_scan import _MATCH, PREFILTER_SHAPES, mask, prefilter, redact, scan_for_pans
from tests.pan_cases import CASES
from tokenwatch.pan import find_pan_like

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
    assert len(result.metadata["tables_scanned"]) == len(TABLES)
    # the database let through only the transition (its Luhn-invalid reason code, and digit
    # runs glued to hex digests) and the event with a Luhn-invalid order number
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


def _random_texts(n: int, seed: int) -> list[str]:
    """Texts of digits, separators, letters and Unicode digits, spaces, dashes, invisible and
    compatibility characters; a third with a card number written in groups, with one
    separator and one digit form."""
    rng = random.Random(seed)
    alphabet = (list("0123456789" * 8) + list(" -. -._:/{}\"'abcfXZ") + [
        "\t", "\n", "\u00a0", "\u2013", "\u2212", "\u200b", "\u00ad", "\u0301", "\ufe0f",
        "\u20e3", "\uff14", "\uff11", "\u0664", "\u0661", "\u0967", "\u2473", "\u3251",
        "\U0001d7d2", "\u00e9", "\u4e2d", "\u00b4"])
    texts = []
    for i in range(n):
        text = "".join(rng.choices(alphabet, k=rng.randint(5, 60)))
        if i % 3 == 0:
            pan = rng.choice(PANS)
            size = rng.choice([len(pan), 4, 5, 6])
            sep = rng.choice([" ", "-", ".", "\t", "\u00a0", "\u2013", "\u200b", ""])
            written = sep.join(pan[at:at + size] for at in range(0, len(pan), size))
            form = rng.choice([0x30, 0x30, 0xFF10, 0x0660, 0x1D7CE])  # the digit zero
            written = written.translate({ord(d): form + int(d) for d in "0123456789"})
            cut = rng.randint(0, len(text))
            text = text[:cut] + rng.choice(["", " ", "x", "\u200b"]) + written + text[cut:]
        texts.append(text)
    return texts


def _prefiltered(wh, target: str, texts: list[str]) -> list[tuple[str, bool]]:
    placeholder = "cast(%s as text[])" if target == "postgres" else "%s"
    return wh.query(f"select s, {prefilter(wh.name, 's')} from unnest({placeholder}) as t(s)",
                    [texts])


@pytest.mark.parametrize("target", TARGETS)
def test_the_database_prefilter_never_hides_a_text_holding_a_pan(warehouse_factory, target):
    """On random text, and on every value of the case table, the pre-filter lets through
    every text in which ``find_pan_like`` finds a run (and not everything)."""
    texts = _random_texts(3000, seed=6) + [c.value for c in CASES]
    wh = warehouse_factory(target)
    rows = _prefiltered(wh, target, texts)
    assert sorted(text for text, _ in rows) == sorted(texts)
    hidden = [text for text, passed in rows if find_pan_like(text) and not passed]
    assert not hidden, hidden
    assert sum(bool(find_pan_like(text)) for text in texts) > 150  # the sample holds hits
    assert sum(not passed for _, passed in rows) > 200  # and the filter filters
    plain = ["49655557826545342356234542334552345678901234567890", "1700000000000",
             "2026-11-24T10:00:00.123456Z", "192.168.100.200 10.0.0.1", "2026-11-24",
             "tok-20261201-0000123", "caf\u00e9 12345", "shardId-000000000001"]
    assert dict(_prefiltered(wh, target, plain)) == dict.fromkeys(plain, False)


CASE_MART = "marts.pan_cases"


@pytest.mark.parametrize("target", [*TARGETS, "snowflake"])
def test_every_case_of_the_table_planted_in_a_raw_and_a_mart_table(warehouse_factory, target):
    """Each value of the case table in the raw quarantine's text and in a mart's: the scan
    finds the PAN-like ones, masked, in both tables, and nothing else."""
    wh = warehouse_factory(target)
    wh.execute("create schema if not exists marts")
    wh.execute(f"create table {CASE_MART} (case_key text, note text)")
    for i, case in enumerate(CASES):
        wh.execute("insert into raw.quarantine (source, location, raw_text, reason, _loaded_at)"
                   " values (%s, %s, %s, %s, %s)",
                   ["pan_cases", f"case-{i}", case.value, "planted", NOW])
        wh.execute(f"insert into {CASE_MART} values (%s, %s)", [f"case-{i}", case.value])
    result = scan_for_pans(wh, [CASE_MART], max_examples=1000)
    hits = {(h["table"], h["locator"]): h for h in result.metadata["hits"]}
    expected = {}
    for table, column in (("raw.quarantine", "raw_text"), (CASE_MART, "note")):
        for i, case in enumerate(CASES):
            if case.pan:
                expected[(table, f"case-{i}")] = (column, [mask(case.pan)], case.why)
    got = {key: (h["column"], h["masked"], expected.get(key, (None, None, "no PAN"))[2])
           for key, h in hits.items()}
    assert got == expected
    assert result.metadata["pan_like_cells"] == len(expected)
    assert not result.passed
    everything = result.summary + json.dumps(result.metadata, ensure_ascii=False)
    for case in CASES:
        if case.pan:
            assert case.pan not in everything  # never echoed


def test_masking_is_the_rules_and_the_prefilter_keeps_its_shapes():
    assert mask is tokenwatch.pan.mask and redact is tokenwatch.pan.redact
    assert mask("4111111111111111") == "411111******1111"
    assert mask("378282246310005") == "378282*****0005"
    assert redact("a 4111111111111111 b 4111111111111112") == (
        "a 411111******1111 b 4111111111111112")
    assert redact("card 4111 1111 1111 1111") == "card 411111******1111"
    assert "{12,18}" in PREFILTER_SHAPES and set(_MATCH) == {"duckdb", "postgres", "snowflake"}


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
