"""The wallet registry's invariants: each wallet once, well-formed, with valid kinds and
token requestor ids."""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pytest

from tokenwatch import wallets
from tokenwatch.wallets import WALLETS, Wallet


def test_ids_are_unique_and_match_the_id_pattern():
    ids = [w.wallet_id for w in WALLETS]
    assert len(ids) == len(set(ids)), ids
    assert all(re.fullmatch(wallets.WALLET_ID_PATTERN, i) for i in ids), ids
    assert wallets.wallet_ids() == tuple(ids)


def test_kinds_are_valid_and_the_native_wallets_are_there():
    assert {w.kind for w in WALLETS} <= set(wallets.KINDS)
    assert wallets.wallet_ids("native") == ("apple_pay", "google_pay", "samsung_pay")
    assert "acme_wallet" in wallets.wallet_ids("custom")  # the simulator's custom wallet
    assert set(wallets.wallet_ids("native")) | set(wallets.wallet_ids("custom")) == set(
        wallets.wallet_ids())


def test_token_requestor_ids_have_11_digits_when_present():
    trids = [t for w in WALLETS for t in (w.visa, w.mastercard) if t is not None]
    assert trids and all(re.fullmatch(r"[0-9]{11}", t) for t in trids), trids
    assert len(trids) == len(set(trids))  # a TRID names one token requestor
    assert wallets.get("apple_pay").token_requestor_id("mastercard") == "50110030273"
    assert wallets.get("google_pay").token_requestor_id("mastercard") is None


def test_display_names_are_unique_and_not_blank():
    names = [w.display_name for w in WALLETS]
    assert all(n.strip() == n and n for n in names) and len(names) == len(set(names))


def test_lookups():
    assert wallets.get("samsung_pay").display_name == "Samsung Pay"
    with pytest.raises(KeyError, match="tokenwatch/wallets.py"):
        wallets.get("shady_pay")
    assert wallets.is_registered("acme_wallet")
    for value in ("shady_pay", "Apple_Pay", "apple_pay\n", " apple_pay", "", None, 7):
        assert not wallets.is_registered(value), value
    message = wallets.unregistered_message()
    assert "tokenwatch/wallets.py" in message
    assert all(i in message for i in wallets.wallet_ids())


def test_entries_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        WALLETS[0].wallet_id = "other"  # type: ignore[misc]


@pytest.mark.parametrize(("fields", "says"), [
    ({"wallet_id": "Acme"}, "does not match"),
    ({"wallet_id": "ab"}, "does not match"),
    ({"wallet_id": "zeta-pay"}, "does not match"),
    ({"kind": "partner"}, "kind"),
    ({"visa": "4001003027"}, "11 digits"),
    ({"mastercard": "5011003027a"}, "11 digits"),
])
def test_a_malformed_entry_is_refused(fields, says):
    with pytest.raises(ValueError, match=says):
        Wallet(**({"wallet_id": "zeta_pay", "display_name": "Zeta Pay", "kind": "custom"}
                  | fields))


def test_the_registry_imports_nothing_of_ours():
    tree = ast.parse(Path(wallets.__file__).read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
    assert not [n for n in names if n.split(".")[0] in {
        "tokenwatch", "state_service", "ingestion", "quality", "reporting", "orchestration",
        "sandbox"}], names
