"""``pan_fields`` names where a PAN sits in decoded JSON without ever carrying it in a path."""

from __future__ import annotations

from tokenwatch.pan import REDACTED, pan_fields

PAN = "4111111111111111"


def test_paths_name_nested_values_keys_and_numbers():
    record = {"a": [1, {"b": int(PAN)}], "note": f"card {PAN[:4]} {PAN[4:8]} {PAN[8:12]} "
              f"{PAN[12:]}", PAN: 1, "ok": "tok-20261201-0000123"}
    assert pan_fields(record) == sorted(["a[1].b", "note", "(top level) key"])


def test_a_path_below_a_pan_key_holds_no_pan():
    found = pan_fields({"meta": {PAN: {"x": PAN}}})
    assert found == sorted(["meta key", f"meta.{REDACTED}.x"])
    assert all(PAN not in path for path in found)
