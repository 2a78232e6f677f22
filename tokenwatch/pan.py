"""Detection of card numbers (PANs): the one rule, used everywhere.

The state service refuses any request field holding a PAN-like value, ingestion quarantines
records whose *decoded* values hold one, the gate scans the warehouse with it, and the dbt macro
``pan_like_runs`` (``dbt_project/macros/pan.sql``) is the same rule in SQL. The table of cases
both must agree on is ``tests/pan_cases.py``.

The rule. A text is first normalised:

1. Unicode NFKC (full-width digits become ASCII, a no-break space a space);
2. every other Unicode decimal digit (Arabic-Indic, Devanagari, ...) becomes its ASCII digit;
3. invisible characters (format and combining marks: zero-width spaces, soft hyphens) go;
4. every whitespace character becomes a space and every Unicode dash a ``-``.

Hex digests (a hex word of 20 or more characters holding a letter, such as a sha256, an md5 or
an etag) and UUIDs are then set aside: their digit stretches are chance, not card numbers.

A *PAN-like run* is then a run of 13-19 digits, written either

- contiguously (a maximal run of ASCII digits; letters around it do not hide it), or
- in groups of 3-6 digits joined by one separator (space, ``-`` or ``.``), as card numbers are
  printed: ``4111 1111 1111 1111``, ``3782-822463-10005``,

whose first digit is a card network's (2-6) and which passes the Luhn check. Epoch
milliseconds (``1700000000000``) start with 1, Kinesis sequence numbers are 56 digits long and
dates have groups of two: none of them trips the rule.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from typing import Any

PAN_MIN_DIGITS = 13
PAN_MAX_DIGITS = 19
#: First digits of the card networks' ranges (2: Mastercard 2-series, 3: Amex/Diners/JCB,
#: 4: Visa, 5: Mastercard, 6: Discover/UnionPay/Maestro).
NETWORK_FIRST_DIGITS = frozenset("23456")
#: Group sizes of a printed card number (4-4-4-4, 4-6-5, 4-6-4, 4-4-4-4-3, ...).
GROUP_MIN_DIGITS, GROUP_MAX_DIGITS = 3, 6
SEPARATORS = " -."
REDACTED = "[PAN-REDACTED]"

_DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2043\u2212\u2e3a\u2e3b\u301c\ufe58\ufe63\uff0d"
_ASCII_DIGIT = frozenset("0123456789")
_DROP_DIGITS = str.maketrans("", "", "0123456789")
_HEX_WORD = re.compile(
    r"(?<![0-9A-Za-z])(?:[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}"
    r"-[0-9A-Fa-f]{12}|(?=[0-9A-Fa-f]*[A-Fa-f])[0-9A-Fa-f]{20,})(?![0-9A-Za-z])")
#: Digit groups joined by single separators (a maximal run of them).
_GROUPED = re.compile(r"[0-9]+(?:[ .\-][0-9]+)*")
_GROUP = re.compile(r"[0-9]+")


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


def _is_pan_digits(digits: str) -> bool:
    return (PAN_MIN_DIGITS <= len(digits) <= PAN_MAX_DIGITS
            and digits[0] in NETWORK_FIRST_DIGITS and luhn_valid(digits))


def normalise(text: str) -> str:
    """The text the rule reads (steps 1-4 of the module's docstring)."""
    if text.isascii():
        return "".join(" " if c.isspace() else c for c in text) if not text.isprintable() \
            else text
    text = unicodedata.normalize("NFKC", text)
    out = []
    for c in text:
        if c in _ASCII_DIGIT:
            out.append(c)
        elif c.isspace():
            out.append(" ")
        elif c in _DASHES:
            out.append("-")
        elif unicodedata.category(c) in ("Cf", "Mn", "Me"):
            continue
        elif (d := unicodedata.decimal(c, None)) is not None:
            out.append(str(d))
        else:
            out.append(c)
    return "".join(out)


def _runs(norm: str) -> Iterator[tuple[int, int, str]]:
    """(start, end, digits) of every PAN-like run in normalised text."""
    masked = _HEX_WORD.sub(lambda m: "#" * len(m.group()), norm) if len(norm) >= 20 else norm
    for run in _GROUPED.finditer(masked):
        groups = [(m.start() + run.start(), m.end() + run.start(), m.group())
                  for m in _GROUP.finditer(run.group())]
        found_in_run: list[tuple[int, int, str]] = []
        for start, end, digits in groups:  # contiguous runs
            if _is_pan_digits(digits):
                found_in_run.append((start, end, digits))
        for i in range(len(groups)):  # printed groups: windows of 3-6 digit groups
            digits = ""
            for j in range(i, len(groups)):
                group = groups[j][2]
                if not GROUP_MIN_DIGITS <= len(group) <= GROUP_MAX_DIGITS:
                    break
                digits += group
                if len(digits) > PAN_MAX_DIGITS:
                    break
                if j > i and _is_pan_digits(digits):
                    found_in_run.append((groups[i][0], groups[j][1], digits))
        yield from found_in_run


def find_pan_like(text: str) -> list[str]:
    """The digits of every PAN-like run in ``text`` (empty: none)."""
    if not isinstance(text, str):
        return []
    if text.isascii() and len(text) - len(text.translate(_DROP_DIGITS)) < PAN_MIN_DIGITS:
        return []  # fewer digits than a card number has (ASCII text normalises to itself,
        # but a non-ASCII character may normalise to two digits: ㉑ is 21)
    return [digits for _, _, digits in _runs(normalise(text))]


def looks_like_pan(value: object) -> bool:
    """True when ``value`` (a string or a number) holds a PAN-like run anywhere."""
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, int):
        return bool(find_pan_like(str(value)))
    if isinstance(value, float):
        return value.is_integer() and abs(value) < 1e20 and bool(find_pan_like(str(int(value))))
    return bool(find_pan_like(value)) if isinstance(value, str) else False


def pan_fields(value: Any, path: str = "") -> list[str]:
    """The paths (``a.b[2]``) of every key or value holding a PAN-like run in decoded JSON."""
    found: list[str] = []
    stack: list[tuple[str, Any]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                if looks_like_pan(key):
                    found.append(f"{where or '(top level)'} key")
                    key = REDACTED  # a path never carries the card number it names
                child_path = f"{where}.{key}" if where else str(key)
                stack.append((child_path, child))
        elif isinstance(item, list):
            stack.extend((f"{where}[{i}]", child) for i, child in enumerate(item))
        elif looks_like_pan(item):
            found.append(where or "(value)")
    return sorted(set(found))


def mask(digits: str) -> str:
    """A PAN shown as PCI DSS allows at most: ``4111111111111111`` -> ``411111******1111``."""
    return digits[:6] + "*" * (len(digits) - 10) + digits[-4:]


def redact(text: str, replacement: str | None = None) -> str:
    """``text`` with every PAN-like run replaced (by its mask, or by ``replacement``). A text
    holding one comes back normalised, the form the rule read it in. The result never holds a
    PAN-like run: where a mask's digits join the groups before it into a new one, that run is
    replaced by ``REDACTED`` (no digits) in a further pass."""
    if not find_pan_like(text):
        return text
    out = _redact_once(text, replacement)
    while find_pan_like(out):
        out = _redact_once(out, REDACTED)
    return out


def _redact_once(text: str, replacement: str | None) -> str:
    norm = normalise(text)
    merged: list[list] = []  # overlapping windows of one run become one span
    for start, end, digits in sorted(_runs(norm)):
        if merged and start < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end, digits])
    out, at = [], 0
    for start, end, digits in merged:
        out += [norm[at:start], replacement if replacement is not None else mask(digits)]
        at = end
    out.append(norm[at:])
    return "".join(out)
