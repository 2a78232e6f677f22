"""The docs name files that exist: every path of ours in backticks in the README, ARCHITECTURE.md
and dbt's README (a folder, a file, or ``file.py:name``) is in the checkout. A move that leaves
the docs pointing at the old place fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOPS = ("tokenwatch", "state_service", "ingestion", "dbt_project", "quality", "reporting",
        "orchestration", "sandbox", "tests", "bench")
DOCS = ["README.md", "ARCHITECTURE.md", "dbt_project/README.md"]
PATH = re.compile(r"`((?:" + "|".join(TOPS) + r")/[\w./*-]*)")


def named_paths(doc: str) -> list[str]:
    text = (ROOT / doc).read_text()
    return sorted({m.group(1).rstrip(".") for m in PATH.finditer(text)})


@pytest.mark.parametrize("doc", DOCS)
def test_every_path_named_exists(doc):
    bases = {ROOT, (ROOT / doc).parent}  # a folder's README may name paths inside it
    missing = [p for p in named_paths(doc) if not any(
        list(base.glob(p)) if "*" in p else (base / p).exists() for base in bases)]
    assert missing == [], f"{doc} names paths that do not exist: {missing}"


def test_the_check_sees_paths():
    assert "tokenwatch/pan.py" in named_paths("ARCHITECTURE.md")
    assert len(named_paths("README.md")) > 10
