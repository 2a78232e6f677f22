"""Generate the dbt seeds that mirror ``state_service/lifecycle.py`` and ``tokenwatch/wallets.py``.

The lifecycle and the wallet registry each have one definition (a Python module); the
warehouse reads them as seeds. This script writes them, and ``--check`` fails when a committed
CSV differs from what the modules would produce (the test ``tests/dbt/test_seeds.py`` runs the
same check)::

    python dbt_project/generate_seeds.py            # (re)write the seeds
    python dbt_project/generate_seeds.py --check    # exit 1 and name the stale files

``seeds/wallets.csv`` comes from the wallet registry (onboarding a wallet is one entry there,
then this script). ``seeds/audit_exception_types.csv`` is written by hand.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path

SEEDS_DIR = Path(__file__).resolve().parent / "seeds"
_REPO_ROOT = Path(__file__).resolve().parent.parent
if str(_REPO_ROOT) not in sys.path:  # run as a script from anywhere in the checkout
    sys.path.insert(0, str(_REPO_ROOT))

from state_service import lifecycle  # noqa: E402
from tokenwatch import wallets  # noqa: E402

Rows = list[list[str]]


def _bool(value: bool) -> str:
    return "true" if value else "false"


def lifecycle_states() -> Rows:
    rows = [["state", "phase", "is_initial", "is_terminal", "state_order"]]
    for order, state in enumerate(lifecycle.State, start=1):
        rows.append([state.value, lifecycle.phase(state),
                     _bool(state == lifecycle.INITIAL_STATE),
                     _bool(state in lifecycle.TERMINAL_STATES), str(order)])
    return rows


def lifecycle_transitions() -> Rows:
    rows = [["transition_key", "from_state", "to_state", "transition_order"]]
    for order, (f, t) in enumerate(lifecycle.legal_pairs(), start=1):
        rows.append([f"{f.value}->{t.value}", f.value, t.value, str(order)])
    return rows


def reason_codes() -> Rows:
    rows = [["reason_code", "description"]]
    rows += [[code, text] for code, text in lifecycle.REASON_CODES.items()]
    return rows


def lifecycle_enums() -> Rows:
    """The small vocabularies (actors, decisions, ...) as one long table."""
    enums = {
        "actor": lifecycle.ACTORS,
        "decision": lifecycle.DECISIONS,
        "idv_method": lifecycle.IDV_METHODS,
        "network": lifecycle.NETWORKS,
        "token_type": lifecycle.TOKEN_TYPES,
    }
    rows = [["enum_key", "enum_name", "enum_value", "value_order"]]
    for name, values in enums.items():
        rows += [[f"{name}:{v}", name, v, str(i)] for i, v in enumerate(values, start=1)]
    return rows


def wallets_seed() -> Rows:
    """The wallet registry: one row per wallet, TRIDs as text (empty when unknown)."""
    rows = [["wallet_id", "display_name", "wallet_kind", "visa_token_requestor_id",
             "mastercard_token_requestor_id"]]
    rows += [[w.wallet_id, w.display_name, w.kind, w.visa or "", w.mastercard or ""]
             for w in wallets.WALLETS]
    return rows


GENERATED = {
    "lifecycle_states.csv": lifecycle_states,
    "lifecycle_transitions.csv": lifecycle_transitions,
    "reason_codes.csv": reason_codes,
    "lifecycle_enums.csv": lifecycle_enums,
    "wallets.csv": wallets_seed,
}


def render(rows: Rows) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def expected() -> dict[str, str]:
    """File name -> the CSV text the lifecycle module and the wallet registry define."""
    return {name: render(make()) for name, make in GENERATED.items()}


def stale(seeds_dir: Path = SEEDS_DIR) -> list[str]:
    """Names of generated seeds that are missing or differ from their definition."""
    out = []
    for name, text in expected().items():
        path = seeds_dir / name
        if not path.is_file() or path.read_text() != text:
            out.append(name)
    return out


def write(seeds_dir: Path = SEEDS_DIR) -> list[Path]:
    seeds_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in expected().items():
        path = seeds_dir / name
        path.write_text(text)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 when a seed differs from lifecycle.py "
                        "or the wallet registry")
    parser.add_argument("--seeds-dir", type=Path, default=SEEDS_DIR)
    args = parser.parse_args(argv)
    if args.check:
        bad = stale(args.seeds_dir)
        if bad:
            print(f"stale seeds in {args.seeds_dir}: {', '.join(bad)}; "
                  "run python dbt_project/generate_seeds.py", file=sys.stderr)
            return 1
        print(f"{len(GENERATED)} generated seeds match state_service/lifecycle.py and "
              "tokenwatch/wallets.py")
        return 0
    for path in write(args.seeds_dir):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
