"""The lifecycle seeds are generated from state_service/lifecycle.py and must not drift."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

from state_service import lifecycle
from tests.dbt.dbt_runner import PROJECT_DIR


def _generator():
    spec = importlib.util.spec_from_file_location("generate_seeds",
                                                  PROJECT_DIR / "generate_seeds.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_seeds_match_lifecycle_py():
    gen = _generator()
    stale = gen.stale()
    assert not stale, (f"seeds {stale} differ from state_service/lifecycle.py: run "
                       "python dbt_project/generate_seeds.py")


def test_check_detects_drift(tmp_path: Path):
    gen = _generator()
    gen.write(tmp_path)
    assert gen.stale(tmp_path) == []
    path = tmp_path / "lifecycle_transitions.csv"
    path.write_text(path.read_text() + "TokenExpired->TokenActive,TokenExpired,TokenActive,99\n")
    assert gen.stale(tmp_path) == ["lifecycle_transitions.csv"]
    assert gen.main(["--check", "--seeds-dir", str(tmp_path)]) == 1


def test_seed_contents_follow_the_definition():
    with (PROJECT_DIR / "seeds" / "lifecycle_transitions.csv").open() as f:
        pairs = {(r["from_state"], r["to_state"]) for r in csv.DictReader(f)}
    assert pairs == {(a.value, b.value) for a, b in lifecycle.legal_pairs()}
    with (PROJECT_DIR / "seeds" / "reason_codes.csv").open() as f:
        codes = {r["reason_code"]: r["description"] for r in csv.DictReader(f)}
    assert codes == dict(lifecycle.REASON_CODES)
    with (PROJECT_DIR / "seeds" / "wallets.csv").open() as f:
        wallets = {r["wallet_id"]: r for r in csv.DictReader(f)}
    assert set(lifecycle.KNOWN_WALLETS) <= set(wallets)
    assert wallets["apple_pay"]["visa_token_requestor_id"] == "40010030273"
    assert wallets["apple_pay"]["mastercard_token_requestor_id"] == "50110030273"
    assert wallets["google_pay"]["visa_token_requestor_id"] == "40010075001"
    assert wallets["samsung_pay"]["visa_token_requestor_id"] == "40010043095"
    assert wallets["google_pay"]["mastercard_token_requestor_id"] == ""
