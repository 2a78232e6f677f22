"""The lifecycle seeds are generated from state_service/lifecycle.py, the wallets seed from the
wallet registry tokenwatch/wallets.py, and they must not drift."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest

from state_service import lifecycle
from tests.dbt.dbt_runner import PROJECT_DIR
from tokenwatch import wallets


def _generator():
    spec = importlib.util.spec_from_file_location("generate_seeds",
                                                  PROJECT_DIR / "generate_seeds.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_seeds_match_lifecycle_py():
    gen = _generator()
    stale = gen.stale()
    assert not stale, (f"seeds {stale} differ from state_service/lifecycle.py or "
                       "tokenwatch/wallets.py: run python dbt_project/generate_seeds.py")


def test_check_detects_drift(tmp_path: Path):
    gen = _generator()
    gen.write(tmp_path)
    assert gen.stale(tmp_path) == []
    path = tmp_path / "lifecycle_transitions.csv"
    path.write_text(path.read_text() + "TokenExpired->TokenActive,TokenExpired,TokenActive,99\n")
    assert gen.stale(tmp_path) == ["lifecycle_transitions.csv"]
    assert gen.main(["--check", "--seeds-dir", str(tmp_path)]) == 1


@pytest.mark.parametrize(("edit", "why"), [
    (lambda t: t.replace("40010043095", "40010043096"), "a token requestor id changed by hand"),
    (lambda t: t + "zeta_pay,Zeta Pay,custom,,\n", "a wallet added to the seed only"),
    (lambda t: "\n".join(x for x in t.split("\n") if not x.startswith("acme_wallet,")),
     "a registered wallet missing"),
    (lambda t: t.replace("Google Pay,native", "Google Pay,custom"), "a kind changed"),
])
def test_check_detects_a_wallets_seed_drifting_from_the_registry(tmp_path: Path, capsys, edit,
                                                                 why):
    gen = _generator()
    gen.write(tmp_path)
    path = tmp_path / "wallets.csv"
    path.write_text(edit(path.read_text()))
    assert gen.stale(tmp_path) == ["wallets.csv"], why
    assert gen.main(["--check", "--seeds-dir", str(tmp_path)]) == 1
    assert "wallets.csv" in capsys.readouterr().err


def test_registering_a_wallet_makes_the_committed_seed_stale(monkeypatch):
    gen = _generator()
    monkeypatch.setattr(wallets, "WALLETS", wallets.WALLETS + (
        wallets.Wallet("zeta_pay", "Zeta Pay", "custom", visa="40010099999"),))
    assert gen.stale() == ["wallets.csv"]
    assert gen.expected()["wallets.csv"].endswith("zeta_pay,Zeta Pay,custom,40010099999,\n")


def test_seed_contents_follow_the_definition():
    with (PROJECT_DIR / "seeds" / "lifecycle_transitions.csv").open() as f:
        pairs = {(r["from_state"], r["to_state"]) for r in csv.DictReader(f)}
    assert pairs == {(a.value, b.value) for a, b in lifecycle.legal_pairs()}
    with (PROJECT_DIR / "seeds" / "reason_codes.csv").open() as f:
        codes = {r["reason_code"]: r["description"] for r in csv.DictReader(f)}
    assert codes == dict(lifecycle.REASON_CODES)
    with (PROJECT_DIR / "seeds" / "wallets.csv").open() as f:
        seeded = {r["wallet_id"]: r for r in csv.DictReader(f)}
    assert list(seeded) == list(wallets.wallet_ids())
    assert {w: r["wallet_kind"] for w, r in seeded.items()} == {
        "apple_pay": "native", "google_pay": "native", "samsung_pay": "native",
        "acme_wallet": "custom"}
    assert seeded["apple_pay"]["visa_token_requestor_id"] == "40010030273"
    assert seeded["apple_pay"]["mastercard_token_requestor_id"] == "50110030273"
    assert seeded["google_pay"]["visa_token_requestor_id"] == "40010075001"
    assert seeded["samsung_pay"]["visa_token_requestor_id"] == "40010043095"
    assert seeded["google_pay"]["mastercard_token_requestor_id"] == ""
    assert seeded["acme_wallet"]["visa_token_requestor_id"] == ""
    with (PROJECT_DIR / "seeds" / "lifecycle_enums.csv").open() as f:
        assert "known_wallet" not in {r["enum_name"] for r in csv.DictReader(f)}
