"""The one table of PAN-rule cases: ``tokenwatch.pan`` (Python) and the dbt macro
``pan_like_runs`` (SQL, on DuckDB and PostgreSQL) must both give ``expected`` for every value.

``pan`` is the digits the rule finds (``None`` when the value is not PAN-like). Test card
numbers only: 4111111111111111 (Visa), 5500000000000004 (Mastercard), 378282246310005 (Amex),
2223003122003222 (Mastercard 2-series), 6011111111111117 (Discover).
"""

from __future__ import annotations

from typing import NamedTuple


class Case(NamedTuple):
    value: str
    pan: str | None
    why: str


V = "4111111111111111"

CASES: tuple[Case, ...] = (
    # -- card numbers, however written --------------------------------------------------
    Case(V, V, "plain Visa test number"),
    Case("5500000000000004", "5500000000000004", "plain Mastercard"),
    Case("378282246310005", "378282246310005", "Amex, 15 digits"),
    Case("2223003122003222", "2223003122003222", "Mastercard 2-series"),
    Case("6011111111111117", "6011111111111117", "Discover"),
    Case("4111 1111 1111 1111", V, "printed with spaces"),
    Case("4111-1111-1111-1111", V, "printed with dashes"),
    Case("4111.1111.1111.1111", V, "printed with dots"),
    Case("3782-822463-10005", "378282246310005", "Amex printed 4-6-5"),
    Case("card:4111111111111111", V, "inside an identifier"),
    Case("w_4111111111111111", V, "a wallet id built on a card number"),
    Case("tok4111111111111111", V, "glued to letters"),
    Case(" 4111111111111111", V, "leading space"),
    Case("4111111111111111\n", V, "trailing newline"),
    Case("\uff14\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11"
         "\uff11\uff11\uff11", V, "full-width digits (NFKC)"),
    Case("4111\u00a01111\u00a01111\u00a01111", V, "no-break spaces (NFKC)"),
    Case("4111\u20131111\u20131111\u20131111", V, "en dashes"),
    Case("4111\u200b1111\u200b1111\u200b1111", V, "zero-width spaces between groups"),
    Case("\u0664\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661"
         "\u0661\u0661\u0661", V, "Arabic-Indic digits"),
    Case("ref 12 4111 1111 1111 1111 exp", V, "printed groups after another number"),
    Case('{"note": "paid with 4111111111111111"}', V, "in JSON text"),
    Case("a 5500000000000004 b", "5500000000000004", "in a sentence"),
    Case("4222222222222", "4222222222222", "13 digits (a Visa test number)"),
    Case("6011000000000000001", "6011000000000000001", "19 digits"),
    Case("6011 0000 0000 0000 001", "6011000000000000001", "19 digits printed 4-4-4-4-3"),
    Case("4111\t1111\t1111\t1111", V, "tab-separated groups (ASCII whitespace)"),
    Case("4111 1111-1111.1111", V, "a different single separator between each group"),
    Case("4111 1111 1111 1111 1", V, "printed groups before another number"),
    Case("4111\u00ad1111\u00ad1111\u00ad1111", V, "soft hyphens between groups (invisible)"),
    Case("4111\u00b41111\u00b41111\u00b41111", V,
         "acute accents between groups (NFKC: a space and a combining mark)"),
    Case("\u096a\u0967\u0967\u0967\u0967\u0967\u0967\u0967\u0967\u0967\u0967\u0967\u0967"
         "\u0967\u0967\u0967", V, "Devanagari digits"),
    Case("".join(d + "\ufe0f\u20e3" for d in V), V,
         "keycap emoji digits (the variation selector and enclosing keycap are dropped)"),
    Case("\U0001d7d2\U0001d7cf\U0001d7cf\U0001d7cf 1111 1111 1111", V,
         "mathematical bold digits (NFKC) in the first group"),
    Case("6f1d1b5c-4111-1111-1111-111111111111 4111111111111111", V,
         "a card number after a UUID"),
    Case("\uff474111111111111111abcd", V,
         "after a full-width g (NFKC: g): the word is no hex digest"),
    # -- not card numbers -----------------------------------------------------------------
    Case("4111111111111112", None, "fails Luhn"),
    Case("1700000000000", None, "epoch milliseconds (first digit 1)"),
    Case("1700000000000000", None, "epoch microseconds"),
    Case("7111111111111114", None, "passes Luhn, but 7 is no card network's first digit"),
    Case("411111111111", None, "12 digits: too short"),
    Case("41111111111111111111", None, "20 digits: too long"),
    Case("49655557826545342356234542334552345678901234567890", None, "Kinesis sequence number"),
    Case("6f1d1b5c-4111-1111-1111-111111111111", None, "a UUID"),
    Case("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", None,
         "sha256 hex"),
    Case("a41111111111111111111111111111ab", None, "md5-sized hex with a Luhn-valid stretch"),
    Case("2026-11-24 2026-11-25", None, "dates: two-digit groups"),
    Case("tok-20261201-0000123", None, "an identifier of 8- and 7-digit groups"),
    Case("2026-11-24T10:00:00.123456Z", None, "a timestamp"),
    Case("cref-0a1b2c3d4e5f60718293a4b5", None, "a card reference (hex)"),
    Case("4111 1111 1111 1112", None, "printed, fails Luhn"),
    Case("4111 - 1111 - 1111 - 1111", None, "groups joined by more than one character"),
    Case("4111  1111  1111  1111", None, "groups joined by two spaces"),
    Case("192.168.100.200 10.0.0.1", None, "IP addresses: four groups of at most 12 digits"),
    Case("ab4111111111111111cdef-ab4111111111111111cdef-ab4111111111111111cdef", None,
         "three hex digests joined by dashes (each one set aside)"),
    Case("dead4111111111111111", None,
         "a 20-character hex word holding a letter is a digest, whatever its digits"),
    Case("", None, "empty"),
)
