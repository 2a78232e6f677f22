"""The Python PAN rule (``tokenwatch.pan``) on the shared case table (``tests/pan_cases.py``,
which the SQL rule is held to in tests/dbt/test_pan_rule.py): every case, ``redact`` never
leaves the digits of a card number, ``mask`` shows at most the first six and last four."""

from __future__ import annotations

import re

import pytest

from tests.pan_cases import CASES
from tokenwatch.pan import (
    _HEX_WORD,
    REDACTED,
    find_pan_like,
    looks_like_pan,
    mask,
    normalise,
    redact,
)

PAN_CASES = [c for c in CASES if c.pan]


@pytest.mark.parametrize("case", CASES, ids=[c.why for c in CASES])
def test_every_case_of_the_table(case):
    assert find_pan_like(case.value) == ([case.pan] if case.pan else [])
    assert looks_like_pan(case.value) is bool(case.pan)


def test_the_table_has_both_kinds_and_no_duplicates():
    assert len(PAN_CASES) >= 20 and len(CASES) - len(PAN_CASES) >= 15
    assert len({c.value for c in CASES}) == len(CASES)


def _digits(text: str) -> str:
    """The digits of ``text`` outside the hex digests and UUIDs the rule sets aside."""
    return re.sub(r"[^0-9]", "", _HEX_WORD.sub("#", normalise(text)))


@pytest.mark.parametrize("case", PAN_CASES, ids=[c.why for c in PAN_CASES])
def test_redact_never_leaves_the_digits_of_a_pan(case):
    redacted = redact(case.value)
    assert case.pan not in _digits(redacted)  # not even with its separators taken out
    assert mask(case.pan) in redacted
    assert find_pan_like(redacted) == []
    replaced = redact(case.value, REDACTED)
    assert REDACTED in replaced and case.pan[:6] not in _digits(replaced.replace(REDACTED, "|"))
    assert find_pan_like(replaced) == []


@pytest.mark.parametrize("case", [c for c in CASES if not c.pan], ids=lambda c: c.why)
def test_redact_leaves_other_text_alone(case):
    assert redact(case.value) == case.value


@pytest.mark.parametrize("digits", ["4222222222222", "378282246310005", "4111111111111111",
                                    "601100000000000001", "6011000000000000001"])
def test_mask_shows_at_most_the_first_six_and_last_four(digits):
    masked = mask(digits)
    assert len(masked) == len(digits)
    assert masked[:6] == digits[:6] and masked[-4:] == digits[-4:]
    assert set(masked[6:-4]) == {"*"}
    assert digits not in masked and find_pan_like(masked) == []
    assert mask("4111111111111111") == "411111******1111"


def test_redacted_text_holds_no_pan_like_run_whatever_precedes_it():
    text = "52345 12345 4111111111111111"
    assert find_pan_like(text) == ["4111111111111111"]
    assert find_pan_like(redact(text)) == []  # '52345 12345 411111******1111': 5234512345411111


def test_a_short_text_that_normalises_to_a_pan_like_run():
    text = "\u3251\u32b2\u3258\u32ba\u325f\u32b1\u32b3"  # circled 21 37 28 45 35 36 38
    assert normalise(text) == "21372845353638"
    assert find_pan_like(text) == ["21372845353638"]
