"""The PAN rule in SQL (``dbt_project/macros/pan.sql``) against the Python rule
(``tokenwatch.pan``) on DuckDB, PostgreSQL and Snowflake (fakesnow's server): one inline
query per target, compiled by dbt once (``dbt compile --inline``) and run on the target's
engine, applies the macros to

- every value of the shared case table (``tests/pan_cases.py``): the digits found must be the
  case's, and Python's ``find_pan_like`` must say the same;
- random texts of digits, separators, hex letters and Unicode digits, spaces and dashes, with
  card numbers planted in them: SQL and Python find the same runs;
- every character Python's normalisation turns into a digit, a separator or nothing, and the
  full-width letters: ``pan_normalise`` gives what Python gives, except for combining marks
  outside the blocks the macro lists (left as they are: counted, never mapped wrongly);

and checks the prefilter (``pan_candidate_pattern``) admits every text in which a run is found
and every character the normalisation changes.
"""

from __future__ import annotations

import random
import sys
import unicodedata
import uuid
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.dbt.dbt_runner import duckdb_env, run_dbt
from tests.pan_cases import CASES
from tokenwatch.pan import find_pan_like, mask, normalise

TARGETS = ["local", "postgres", "snowflake"]
PANS = ["4111111111111111", "5500000000000004", "378282246310005", "6011000000000000001",
        "4222222222222"]


def random_texts(n: int = 400, seed: int = 11) -> list[str]:
    """Texts over characters whose normalisation the SQL tables cover exactly (no combining
    mark after a letter: NFKC would compose it), a third with a card number written with
    random separators and digit forms."""
    rng = random.Random(seed)
    alphabet = (list("0123456789" * 6) + list(" -. -.") + list("afAF" * 2) + list("xz_:g")
                + ["\t", "\u00a0", "\u2013", "\u200b", "\uff14", "\uff11", "\u0664", "\u0661",
                   "\u0967"])
    texts = []
    for i in range(n):
        text = "".join(rng.choices(alphabet, k=rng.randint(3, 50)))
        if i % 3 == 0:
            pan = rng.choice(PANS)
            sizes = rng.choice([[len(pan)], [4, 4, 4, 4, 3, 4][:len(pan) // 4 + 1], [4, 6, 5, 4],
                                [3, 5, 5, 6]])
            groups, at = [], 0
            for size in sizes:
                if at < len(pan):
                    groups.append(pan[at:at + size])
                    at += size
            groups[-1] += pan[at:]
            written = rng.choice([" ", "-", ".", "\u00a0", "\u2013", "\t"]).join(groups)
            if rng.random() < 0.2:
                written = written.translate({ord(d): 0xFF10 + int(d) for d in "0123456789"})
            cut = rng.randint(0, len(text))
            left, right = rng.choices([" ", ":", "x", "_", "\u00a0", "a", "-", ""], k=2)
            text = text[:cut] + left + written + right + text[cut:]
        texts.append(text)
    return texts


def probe_characters() -> list[str]:
    """Every non-ASCII character Python's normalisation makes a digit, ' ', '-', '.' or
    nothing, and the full-width Latin letters."""
    wanted = set("0123456789 .-")
    chars = []
    for cp in range(0x80, sys.maxunicode + 1):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        c = chr(cp)
        norm = normalise(c)
        full_width_letter = 0xFF21 <= cp <= 0xFF5A and norm.isalpha()
        if norm != c and (norm == "" or norm in wanted) or full_width_letter:
            chars.append(c)
    return chars


@dataclass
class Inputs:
    cases: list[str]
    texts: list[str]
    chars: list[str]

    def values(self) -> list[str]:
        return self.cases + self.texts + self.chars

    def kind(self, i: int) -> str:
        return ("case" if i < len(self.cases) else
                "text" if i < len(self.cases) + len(self.texts) else "char")


@pytest.fixture(scope="module")
def inputs() -> Inputs:
    return Inputs([c.value for c in CASES], random_texts(), probe_characters())


def _literal(value: str, target: str) -> str:
    value = value.replace("'", "''")
    if target == "snowflake":  # a backslash is an escape in Snowflake's string literals
        value = value.replace("\\", "\\\\")
    return f"'{value}'"


def inline_query(values: list[str], target: str) -> str:
    """One query: the digits of every run found (kind 'pan'), their masked form, the
    normalised text and whether the prefilter admits the raw text, per input."""
    rows = ",\n".join(f"({i}, {_literal(v, target)})" for i, v in enumerate(values))
    return f"""
with pan_inputs as (
    select * from (values
{{% raw %}}{rows}{{% endraw %}}
    ) as t(input_id, input_value)
),
pan_found as (
    {{{{ pan_like_runs('pan_inputs', 'input_value', ['input_id']) }}}}
)
select 'pan' as kind, input_id, pan_digits as result from pan_found
union all
select 'masked', input_id, {{{{ mask_pan('pan_digits') }}}} from pan_found
union all
select 'norm', input_id, {{{{ pan_normalise('input_value') }}}} from pan_inputs
union all
select 'candidate', input_id,
    case when {{{{ regexp_contains('input_value', pan_candidate_pattern()) }}}}
        then 'y' else 'n' end
from pan_inputs
"""


@dataclass
class SqlRule:
    target: str
    by_kind: dict[str, dict[int, list[str]]]

    def found(self, i: int) -> list[str]:
        return sorted(self.by_kind["pan"].get(i, []))


def _run(target: str, compiled: str, request) -> list[tuple]:
    if target == "local":
        import duckdb

        with duckdb.connect() as con:
            return con.execute(compiled).fetchall()
    if target == "postgres":
        import psycopg

        from tokenwatch.postgres import drop_database, ensure_database

        server = request.getfixturevalue("pg_server")
        name = f"tokenwatch_pan_{uuid.uuid4().hex[:10]}"
        try:
            with psycopg.connect(ensure_database(server, name)) as conn:
                return conn.execute(compiled).fetchall()
        finally:
            drop_database(server, name)
    import snowflake.connector

    kw = request.getfixturevalue("fakesnow_server")
    conn = snowflake.connector.connect(**kw)
    try:
        cur = conn.cursor()
        database = f"TOKENWATCH_PAN_{uuid.uuid4().hex[:8].upper()}"
        cur.execute(f"create database {database}")
        cur.execute(f"use database {database}")
        cur.execute("create schema pan")
        cur.execute("use schema pan")
        cur.execute(compiled)
        return cur.fetchall()
    finally:
        conn.close()


@pytest.fixture(scope="module", params=TARGETS)
def sql_rule(request, inputs: Inputs, tmp_path_factory: pytest.TempPathFactory) -> SqlRule:
    target = request.param
    workdir = tmp_path_factory.mktemp(f"dbt-pan-{target}")
    env = duckdb_env(Path(workdir) / "unused.duckdb") if target == "local" else {}
    res = run_dbt(["compile", "--no-populate-cache", "--inline",
                   inline_query(inputs.values(), target)], target, env, workdir)
    assert res.success, res.explain()
    compiled = res.result.results[0].node.compiled_code
    by_kind: dict[str, dict[int, list[str]]] = defaultdict(lambda: defaultdict(list))
    for kind, input_id, result in _run(target, compiled, request):
        by_kind[kind][int(input_id)].append(result)
    return SqlRule(target, by_kind)


def test_every_case_of_the_table(sql_rule: SqlRule, inputs: Inputs):
    wrong = []
    for i, case in enumerate(CASES):
        expected = [case.pan] if case.pan else []
        assert find_pan_like(case.value) == expected, case  # the Python rule, the same table
        if sql_rule.found(i) != expected:
            wrong.append(f"{case.why} ({case.value!r}): SQL {sql_rule.found(i)}, "
                         f"expected {expected}")
    assert not wrong, f"{sql_rule.target}:\n" + "\n".join(wrong)


def test_random_texts_give_the_runs_python_finds(sql_rule: SqlRule, inputs: Inputs):
    offset = len(inputs.cases)
    wrong = [f"{text!r}: SQL {sql_rule.found(offset + i)}, Python {sorted(find_pan_like(text))}"
             for i, text in enumerate(inputs.texts)
             if sql_rule.found(offset + i) != sorted(find_pan_like(text))]
    assert not wrong, f"{sql_rule.target}:\n" + "\n".join(wrong)
    assert sum(bool(find_pan_like(t)) for t in inputs.texts) > 50  # the sample holds hits


def test_runs_are_masked_as_python_masks_them(sql_rule: SqlRule, inputs: Inputs):
    for i in range(len(inputs.cases) + len(inputs.texts)):
        assert sorted(sql_rule.by_kind["masked"].get(i, [])) == sorted(
            mask(d) for d in sql_rule.found(i))


def test_the_prefilter_admits_every_text_holding_a_run(sql_rule: SqlRule, inputs: Inputs):
    candidate = sql_rule.by_kind["candidate"]
    values = inputs.values()
    assert len(candidate) == len(values)
    missed = [values[i] for i in range(len(values))
              if candidate[i] != ["y"] and (sql_rule.found(i) or find_pan_like(values[i])
                                             and inputs.kind(i) != "char")]
    assert not missed, f"{sql_rule.target}: the prefilter hides {missed}"
    # every character the normalisation changes makes its text a candidate
    offset = len(inputs.cases) + len(inputs.texts)
    hidden = [f"U+{ord(c):04X}" for i, c in enumerate(inputs.chars)
              if sql_rule.by_kind["norm"][offset + i] != [c] and candidate[offset + i] != ["y"]]
    assert not hidden, f"{sql_rule.target}: changed by pan_normalise, not candidates: {hidden}"
    # plain texts without a run stay out (the prefilter is not 'everything')
    for text in ("49655557826545342356234542334552345678901234567890", "1700000000000",
                 "2026-11-24T10:00:00.123456Z", "192.168.100.200 10.0.0.1",
                 "tok-20261201-0000123", "2026-11-24 2026-11-25"):
        assert text in values
        assert candidate[values.index(text)] == ["n"], text


def test_normalisation_agrees_with_python_character_by_character(sql_rule: SqlRule,
                                                                 inputs: Inputs):
    norm = sql_rule.by_kind["norm"]
    for i, case in enumerate(CASES):
        assert norm[i] == [normalise(case.value)], (sql_rule.target, case)
    offset = len(inputs.cases)
    for i, text in enumerate(inputs.texts):
        assert norm[offset + i] == [normalise(text)], (sql_rule.target, text)
    offset += len(inputs.texts)
    wrong, left = [], defaultdict(int)
    for i, c in enumerate(inputs.chars):
        (got,) = norm[offset + i]
        if got == normalise(c):
            continue
        category = unicodedata.category(c)
        if got == c and category == "Mn":
            left[category] += 1  # documented: not in the macro's tables
        else:
            wrong.append(f"U+{ord(c):04X} ({category}): SQL {got!r}, Python {normalise(c)!r}")
    assert not wrong, f"{sql_rule.target}:\n" + "\n".join(wrong)
    # what the SQL leaves: combining marks outside the listed blocks, nothing else
    assert set(left) <= {"Mn"}, dict(left)
    assert dict(left) == {"Mn": 1441}, dict(left)  # of 1950 (Unicode 14)
