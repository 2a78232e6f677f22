"""Detection of card numbers (PANs): the one place the Luhn rule lives.

The state service refuses a ``card_ref`` that looks like a PAN, and the audit scans look for
PAN-like digit runs in free text with the same rule.
"""

from __future__ import annotations

import re

PAN_MIN_DIGITS = 13
PAN_MAX_DIGITS = 19
#: A digit run that stands alone: not part of a longer word such as a hex hash or a UUID,
#: whose digit stretches would otherwise pass the Luhn check one time in ten.
_DIGIT_RUN = re.compile(
    rf"(?<![0-9A-Za-z])\d{{{PAN_MIN_DIGITS},{PAN_MAX_DIGITS}}}(?![0-9A-Za-z])")


def luhn_valid(digits: str) -> bool:
    """True when ``digits`` (only 0-9) passes the Luhn checksum."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def looks_like_pan(value: str) -> bool:
    """True when the whole value is a 13-19 digit string that passes the Luhn check."""
    return (
        value.isascii()
        and value.isdigit()
        and PAN_MIN_DIGITS <= len(value) <= PAN_MAX_DIGITS
        and luhn_valid(value)
    )


def find_pan_like(text: str) -> list[str]:
    """Every 13-19 digit run inside ``text`` that passes the Luhn check."""
    return [m.group(0) for m in _DIGIT_RUN.finditer(text) if luhn_valid(m.group(0))]
