{#- Card-number (PAN) detection in SQL: the rule of tokenwatch/pan.py (its docstring states
    it), with the same results on DuckDB, PostgreSQL (default) and Snowflake; the case table
    both must agree on is tests/pan_cases.py (tests/dbt/test_pan_rule.py runs it here).

    - pan_normalise(expr): the text the rule reads (Unicode digits to ASCII, Unicode spaces,
      dashes and dots to ' ', '-', '.', invisible characters dropped, full-width letters to
      ASCII), by tables of code points (pan_unicode_tables) rather than NFKC, so that every
      target gives the same text;
    - pan_mask_digests(expr): hex digests (a hex word of 20 or more characters) and UUIDs set
      aside;
    - pan_like_runs(relation, text_column, columns): one row per PAN-like run of each row's
      text (contiguous, or printed in groups of 3-6 digits joined by one of ' ', '-', '.'),
      13-19 digits, first digit 2-6, Luhn-valid: the digits as pan_digits;
    - pan_candidate_pattern(): a regular expression on the *raw* text matching at least every
      text pan_like_runs finds something in (the cheap prefilter of big tables);
    - luhn_valid(digits), mask_pan(digits).

    What the SQL does not do that Python does: compatibility characters NFKC turns into
    several characters (U+2473 -> '20', U+2488 -> '1.', U+00BD -> '1/2'), combining marks
    outside the blocks listed in pan_unicode_tables (script-specific vowel signs, ...), NFKC's
    composition (e + U+0301 is one letter in Python, 'e' here), and letters NFKC makes ASCII
    other than the full-width ones (mathematical alphanumerics, circled letters): letters only
    decide a hex word's extent. -#}


{#- True when `expr` contains `pattern` (a POSIX/RE2 regular expression) anywhere. -#}
{% macro regexp_contains(expr, pattern) -%}
  {{ return(adapter.dispatch('regexp_contains', 'tokenwatch')(expr, pattern)) }}
{%- endmacro %}

{% macro default__regexp_contains(expr, pattern) -%}
  ({{ expr }} ~ '{{ pattern }}')
{%- endmacro %}

{% macro duckdb__regexp_contains(expr, pattern) -%}
  regexp_matches({{ expr }}, '{{ pattern }}')
{%- endmacro %}

{% macro snowflake__regexp_contains(expr, pattern) -%}
  (regexp_instr({{ expr }}, '{{ pattern }}') > 0)
{%- endmacro %}


{#- `expr` with every match of `pattern` replaced by `replacement` (backreferences \1, \2). -#}
{% macro pan_regexp_replace(expr, pattern, replacement) -%}
  {{ return(adapter.dispatch('pan_regexp_replace', 'tokenwatch')(expr, pattern, replacement)) }}
{%- endmacro %}

{% macro default__pan_regexp_replace(expr, pattern, replacement) -%}
  regexp_replace({{ expr }}, '{{ pattern }}', '{{ replacement }}', 'g')
{%- endmacro %}

{% macro snowflake__pan_regexp_replace(expr, pattern, replacement) -%}
  {#- every occurrence by default; a backslash in a string literal is an escape -#}
  regexp_replace({{ expr }}, '{{ pattern }}', '{{ replacement | replace("\\", "\\\\") }}')
{%- endmacro %}


{#- select <columns>, <match> as <value>, <n> as <ordinal> from <relation>: one row per
    (non-overlapping, leftmost-longest) match of `pattern` in text_column, numbered from 1.
    `pattern` groups are written (?:...); Snowflake's POSIX syntax gets plain (...). -#}
{% macro pan_unnest_matches(relation, text_column, pattern, columns, value, ordinal) -%}
  {{ return(adapter.dispatch('pan_unnest_matches', 'tokenwatch')(relation, text_column, pattern,
                                                                  columns, value, ordinal)) }}
{%- endmacro %}

{% macro default__pan_unnest_matches(relation, text_column, pattern, columns, value, ordinal) -%}
  select {% for c in columns %}r.{{ c }}, {% endfor %}m.pan_match[1] as {{ value }},
    m.pan_ordinal as {{ ordinal }}
  from {{ relation }} as r
  cross join lateral regexp_matches(r.{{ text_column }}, '{{ pattern }}', 'g')
    with ordinality as m(pan_match, pan_ordinal)
{%- endmacro %}

{% macro duckdb__pan_unnest_matches(relation, text_column, pattern, columns, value, ordinal) -%}
  select {% for c in columns %}{{ c }}, {% endfor %}unnest(pan_matches) as {{ value }},
    unnest(range(1, len(pan_matches) + 1)) as {{ ordinal }}
  from (
    select {% for c in columns %}r.{{ c }}, {% endfor %}
      regexp_extract_all(r.{{ text_column }}, '{{ pattern }}') as pan_matches
    from {{ relation }} as r
  ) as m
{%- endmacro %}

{% macro snowflake__pan_unnest_matches(relation, text_column, pattern, columns, value, ordinal) -%}
  {#- the positions are flattened, not the matches: FLATTEN's INDEX would do, but fakesnow
      numbers it across all input rows -#}
  select {% for c in columns %}r.{{ c }}, {% endfor %}
    r.pan_matches[m.value::int]::varchar as {{ value }}, m.value::int + 1 as {{ ordinal }}
  from (
    select {% for c in columns %}r.{{ c }}, {% endfor %}
      regexp_substr_all(r.{{ text_column }}, '{{ pattern | replace("(?:", "(") }}') as pan_matches
    from {{ relation }} as r
  ) as r,
    lateral flatten(input => array_generate_range(
      0, cast(array_size(r.pan_matches) as integer))) as m
{%- endmacro %}


{#- The code points pan_normalise maps, as [first, last] ranges, and the strings built from
    them: what Python's normalise() gives for each such single character (Unicode 14, the
    version of Python 3.11's unicodedata; tests/dbt/test_pan_rule.py checks every one).
    Returns a dict:
      digits[d]   a regexp class of the characters that are digit d (Arabic-Indic, Devanagari,
                  full-width, superscript, mathematical, ... every Unicode decimal digit);
      space, dash, dot   classes of the characters that become ' ', '-', '.';
      ascii_space the ASCII whitespace that becomes ' ' (tab, newline, ..., \x1c-\x1f);
      dropped     a class of the invisible characters (format characters, enclosing marks, the
                  common blocks of combining marks, variation selectors);
      letters_from, letters_to   full-width Latin letters and their ASCII;
      special     one class of every non-ASCII character above. -#}
{% macro pan_unicode_tables() -%}
  {#- [first, last, digit of first] -#}
  {%- set digit_ranges = [
      [0x00B2, 0x00B3, 2], [0x00B9, 0x00B9, 1], [0x0660, 0x0669, 0], [0x06F0, 0x06F9, 0],
      [0x07C0, 0x07C9, 0], [0x0966, 0x096F, 0], [0x09E6, 0x09EF, 0], [0x0A66, 0x0A6F, 0],
      [0x0AE6, 0x0AEF, 0], [0x0B66, 0x0B6F, 0], [0x0BE6, 0x0BEF, 0], [0x0C66, 0x0C6F, 0],
      [0x0CE6, 0x0CEF, 0], [0x0D66, 0x0D6F, 0], [0x0DE6, 0x0DEF, 0], [0x0E50, 0x0E59, 0],
      [0x0ED0, 0x0ED9, 0], [0x0F20, 0x0F29, 0], [0x1040, 0x1049, 0], [0x1090, 0x1099, 0],
      [0x17E0, 0x17E9, 0], [0x1810, 0x1819, 0], [0x1946, 0x194F, 0], [0x19D0, 0x19D9, 0],
      [0x1A80, 0x1A89, 0], [0x1A90, 0x1A99, 0], [0x1B50, 0x1B59, 0], [0x1BB0, 0x1BB9, 0],
      [0x1C40, 0x1C49, 0], [0x1C50, 0x1C59, 0], [0x2070, 0x2070, 0], [0x2074, 0x2079, 4],
      [0x2080, 0x2089, 0], [0x2460, 0x2468, 1], [0x24EA, 0x24EA, 0], [0xA620, 0xA629, 0],
      [0xA8D0, 0xA8D9, 0], [0xA900, 0xA909, 0], [0xA9D0, 0xA9D9, 0], [0xA9F0, 0xA9F9, 0],
      [0xAA50, 0xAA59, 0], [0xABF0, 0xABF9, 0], [0xFF10, 0xFF19, 0], [0x104A0, 0x104A9, 0],
      [0x10D30, 0x10D39, 0], [0x11066, 0x1106F, 0], [0x110F0, 0x110F9, 0],
      [0x11136, 0x1113F, 0], [0x111D0, 0x111D9, 0], [0x112F0, 0x112F9, 0],
      [0x11450, 0x11459, 0], [0x114D0, 0x114D9, 0], [0x11650, 0x11659, 0],
      [0x116C0, 0x116C9, 0], [0x11730, 0x11739, 0], [0x118E0, 0x118E9, 0],
      [0x11950, 0x11959, 0], [0x11C50, 0x11C59, 0], [0x11D50, 0x11D59, 0],
      [0x11DA0, 0x11DA9, 0], [0x16A60, 0x16A69, 0], [0x16AC0, 0x16AC9, 0],
      [0x16B50, 0x16B59, 0], [0x1D7CE, 0x1D7D7, 0], [0x1D7D8, 0x1D7E1, 0],
      [0x1D7E2, 0x1D7EB, 0], [0x1D7EC, 0x1D7F5, 0], [0x1D7F6, 0x1D7FF, 0], [0x1E140, 0x1E149, 0],
      [0x1E2F0, 0x1E2F9, 0], [0x1E950, 0x1E959, 0], [0x1FBF0, 0x1FBF9, 0]] -%}
  {#- whitespace, and spacing accents NFKC makes a space and a combining mark -#}
  {%- set space_ranges = [
      [0x0085, 0x0085], [0x00A0, 0x00A0], [0x00A8, 0x00A8], [0x00AF, 0x00AF],
      [0x00B4, 0x00B4], [0x00B8, 0x00B8], [0x02D8, 0x02DD], [0x037A, 0x037A],
      [0x0384, 0x0385], [0x1680, 0x1680], [0x1FBD, 0x1FBD], [0x1FBF, 0x1FC1],
      [0x1FCD, 0x1FCF], [0x1FDD, 0x1FDF], [0x1FED, 0x1FEE], [0x1FFD, 0x1FFE],
      [0x2000, 0x200A], [0x2017, 0x2017], [0x2028, 0x2029], [0x202F, 0x202F],
      [0x203E, 0x203E], [0x205F, 0x205F], [0x3000, 0x3000], [0x309B, 0x309C],
      [0xFC5E, 0xFC63], [0xFE49, 0xFE4C], [0xFE70, 0xFE70], [0xFE72, 0xFE72],
      [0xFE74, 0xFE74], [0xFE76, 0xFE76], [0xFE78, 0xFE78], [0xFE7A, 0xFE7A],
      [0xFE7C, 0xFE7C], [0xFE7E, 0xFE7E], [0xFFE3, 0xFFE3]] -%}
  {%- set ascii_space_ranges = [[0x09, 0x0D], [0x1C, 0x1F]] -%}
  {%- set dash_ranges = [
      [0x2010, 0x2015], [0x2043, 0x2043], [0x207B, 0x207B], [0x208B, 0x208B],
      [0x2212, 0x2212], [0x2E3A, 0x2E3B], [0x301C, 0x301C], [0xFE31, 0xFE32],
      [0xFE58, 0xFE58], [0xFE63, 0xFE63], [0xFF0D, 0xFF0D]] -%}
  {%- set dot_ranges = [[0x2024, 0x2024], [0xFE52, 0xFE52], [0xFF0E, 0xFF0E]] -%}
  {#- format characters (soft hyphen, zero-width spaces and joiners, bidi controls, BOM, tag
      characters), enclosing marks (the keycap), half-width kana voicing marks, and the
      combining marks of the blocks Combining Diacritical Marks (and its Extended and
      Supplement), Cyrillic, for Symbols, Half Marks and the variation selectors -#}
  {%- set dropped_ranges = [
      [0x00AD, 0x00AD], [0x0300, 0x036F], [0x0483, 0x0489], [0x0600, 0x0605],
      [0x061C, 0x061C], [0x06DD, 0x06DD], [0x070F, 0x070F], [0x0890, 0x0891],
      [0x08E2, 0x08E2], [0x180E, 0x180E], [0x1AB0, 0x1ACE], [0x1DC0, 0x1DFF],
      [0x200B, 0x200F], [0x202A, 0x202E], [0x2060, 0x2064], [0x2066, 0x206F],
      [0x20D0, 0x20F0], [0xA670, 0xA672], [0xFE00, 0xFE0F], [0xFE20, 0xFE2F],
      [0xFEFF, 0xFEFF], [0xFF9E, 0xFF9F], [0xFFF9, 0xFFFB], [0x110BD, 0x110BD],
      [0x110CD, 0x110CD], [0x13430, 0x13438], [0x1BCA0, 0x1BCA3], [0x1D173, 0x1D17A],
      [0xE0001, 0xE0001], [0xE0020, 0xE007F], [0xE0100, 0xE01EF]] -%}

  {%- set digits = [] -%}
  {%- for d in range(10) -%}
    {%- set chars = [] -%}
    {%- for r in digit_ranges -%}
      {%- set cp = r[0] + d - r[2] -%}
      {%- if r[0] <= cp <= r[1] %}{% do chars.append('%c' | format(cp)) %}{% endif -%}
    {%- endfor -%}
    {%- do digits.append('[' ~ chars | join('') ~ ']') -%}
  {%- endfor -%}
  {%- set letters = [] -%}
  {%- for cp in range(0xFF21, 0xFF3B) -%}
    {%- do letters.append('%c' | format(cp)) -%}
  {%- endfor -%}
  {%- for cp in range(0xFF41, 0xFF5B) -%}
    {%- do letters.append('%c' | format(cp)) -%}
  {%- endfor -%}
  {%- set ascii_space = [] -%}
  {%- for r in ascii_space_ranges -%}
    {%- for cp in range(r[0], r[1] + 1) -%}
      {%- do ascii_space.append('%c' | format(cp)) -%}
    {%- endfor -%}
  {%- endfor -%}
  {%- set digit_class = [] -%}
  {%- for r in digit_ranges -%}
    {%- do digit_class.append(pan_class_range(r[0], r[1])) -%}
  {%- endfor -%}
  {%- set classes = {} -%}
  {%- for name, ranges in [('space', space_ranges), ('dash', dash_ranges), ('dot', dot_ranges),
                           ('dropped', dropped_ranges)] -%}
    {%- set parts = [] -%}
    {%- for r in ranges %}{% do parts.append(pan_class_range(r[0], r[1])) %}{% endfor -%}
    {%- do classes.update({name: parts | join('')}) -%}
  {%- endfor -%}
  {{ return({
      'digits': digits,
      'space': '[' ~ classes.space ~ ']',
      'dash': '[' ~ classes.dash ~ ']',
      'dot': '[' ~ classes.dot ~ ']',
      'ascii_space': ascii_space | join(''),
      'dropped': '[' ~ classes.dropped ~ ']',
      'letters_from': letters | join(''),
      'letters_to': 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz',
      'special': '[' ~ digit_class | join('') ~ classes.space ~ classes.dash ~ classes.dot
                 ~ classes.dropped ~ pan_class_range(0xFF21, 0xFF3A)
                 ~ pan_class_range(0xFF41, 0xFF5A) ~ ']'}) }}
{%- endmacro %}

{% macro pan_class_range(first, last) -%}
  {{ return('%c' | format(first) if first == last else '%c-%c' | format(first, last)) }}
{%- endmacro %}


{#- The text the rule reads: what Python's normalise() gives, character by character, for the
    characters of pan_unicode_tables. Plain text (none of them) only has its ASCII whitespace
    made spaces; the regular-expression passes run only on text holding one of them. -#}
{% macro pan_normalise(expr) -%}
  {%- set t = pan_unicode_tables() -%}
  {%- set spaces = ' ' * (t.ascii_space | length) -%}
  {%- set text = pan_regexp_replace(expr, t.dropped, '') -%}
  {%- set text = pan_regexp_replace(text, t.space, ' ') -%}
  {%- set text = pan_regexp_replace(text, t.dash, '-') -%}
  {%- set text = pan_regexp_replace(text, t.dot, '.') -%}
  {%- set passes = [text] -%}  {#- (a loop cannot set a variable outside it) -#}
  {%- for d in range(10) -%}
    {%- do passes.append(pan_regexp_replace(passes[-1], t.digits[d], d | string)) -%}
  {%- endfor -%}
  {%- set text = passes[-1] -%}
  (case when {{ regexp_contains(expr, t.special) }}
    then translate(translate({{ text }}, '{{ t.letters_from }}', '{{ t.letters_to }}'),
                   '{{ t.ascii_space }}', '{{ spaces }}')
    else translate({{ expr }}, '{{ t.ascii_space }}', '{{ spaces }}') end)
{%- endmacro %}


{#- Hex digests and UUIDs (bounded by non-alphanumerics) each become '#'. Python's rule only
    sets aside hex words holding a letter; a word of 20 or more digits alone is no PAN either
    way (too long, and no 3-6 digit group). Without lookbehind (RE2), a match takes the
    characters on either side and gives them back; the second pass gets the digests next to
    one masked by the first (a-b-c: the first pass masks a and c). -#}
{% macro pan_mask_digests(expr) -%}
  {%- set h = '[0-9A-Fa-f]' -%}
  {%- set pattern = '(^|[^0-9A-Za-z])(' ~ h ~ '{8}-' ~ h ~ '{4}-' ~ h ~ '{4}-' ~ h ~ '{4}-'
                    ~ h ~ '{12}|' ~ h ~ '{20,})([^0-9A-Za-z]|$)' -%}
  {{ pan_regexp_replace(pan_regexp_replace(expr, pattern, '\\1#\\3'), pattern, '\\1#\\3') }}
{%- endmacro %}


{#- A regular expression that matches (at least) every raw text in which pan_like_runs finds a
    PAN-like run: a character pan_normalise changes (other than ASCII whitespace), or, in
    ASCII, a maximal run of 13-19 digits or digit groups of 3-6 joined by single separators
    (space, '-', '.', ASCII whitespace) that could hold 13 digits (three groups one of which
    has five, four one of which has four, or five and more), starting with 2-6. Kinesis
    sequence numbers (56 digits), epoch milliseconds, dates, timestamps and IP addresses do
    not match. -#}
{% macro pan_candidate_pattern() -%}
  {%- set t = pan_unicode_tables() -%}
  {%- set s = '[ .' ~ t.ascii_space ~ '-]' -%}
  {#- groups of 3-6 digits (of 4-6, of 5-6); the first one's first digit is a network's -#}
  {%- set g, g4, g5 = '[0-9]{3,6}', '[0-9]{4,6}', '[0-9]{5,6}' -%}
  {%- set f, f4, f5 = '[2-6][0-9]{2,5}', '[2-6][0-9]{3,5}', '[2-6][0-9]{4,5}' -%}
  {%- set grouped = [
      f5 ~ s ~ g ~ s ~ g, f ~ s ~ g5 ~ s ~ g, f ~ s ~ g ~ s ~ g5,
      f4 ~ s ~ g ~ s ~ g ~ s ~ g, f ~ s ~ g4 ~ s ~ g ~ s ~ g, f ~ s ~ g ~ s ~ g4 ~ s ~ g,
      f ~ s ~ g ~ s ~ g ~ s ~ g4, f ~ '(' ~ s ~ g ~ '){4,}'] -%}
  {{ return(t.special ~ '|(^|[^0-9])([2-6][0-9]{12,18}|' ~ grouped | join('|')
            ~ ')([^0-9]|$)') }}
{%- endmacro %}


{#- True when `digits` (a string of 13-19 digits) passes the Luhn check: plain arithmetic on
    substrings, the same SQL on every target. Zeros on the left change no Luhn sum, so the
    digits are read at fixed places of the 19-digit padding, each once (every second one
    doubled, less 9 above 9, by lookup): an expression small enough for PostgreSQL's planner
    and JIT even when `digits` is itself an expression. -#}
{% macro luhn_valid(digits) -%}
  {%- set padded = "lpad(" ~ digits ~ ", 19, '0')" -%}
  ((
  {%- for i in range(19) %}
    {%- set d = "cast(substr(" ~ padded ~ ", " ~ (19 - i) ~ ", 1) as integer)" %}
    {% if i % 2 == 0 %}{{ d }}{% else %}cast(substr('0246813579', {{ d }} + 1, 1) as integer)
    {%- endif %}{{ ' +' if not loop.last }}
  {%- endfor %}
  ) % 10 = 0)
{%- endmacro %}


{#- A PAN shown as PCI DSS allows at most: first six and last four digits. -#}
{% macro mask_pan(digits) -%}
  {{ dbt.concat(["substr(" ~ digits ~ ", 1, 6)",
                 "repeat('*', length(" ~ digits ~ ") - 10)",
                 dbt.right(digits, "4")]) }}
{%- endmacro %}


{#- select <columns>, <digits> as pan_digits from <relation>: one row per PAN-like run in
    text_column (rows without one produce nothing), the same runs, with the same digits, as
    Python's find_pan_like. The text is normalised and its digests masked; each maximal run of
    digit groups joined by single separators is split into its groups; a candidate is one
    group (contiguous digits) or 3 to 6 consecutive groups of 3-6 digits each (printed);
    candidates of 13-19 digits, first digit 2-6, passing Luhn, are PAN-like. -#}
{% macro pan_like_runs(relation, text_column, columns) -%}
  {%- set cell = columns + ['pan_cell_id'] -%}
  {%- set texts -%}
    (select {% for c in columns %}{{ c }}, {% endfor %}row_number() over () as pan_cell_id,
      {{ pan_mask_digests(pan_normalise(text_column)) }} as pan_text
    from {{ relation }})
  {%- endset -%}
  {%- set runs -%}
    (select * from ({{ pan_unnest_matches(texts, 'pan_text', '[0-9]+(?:[ .-][0-9]+)*', cell,
                                          'pan_run', 'pan_run_no') }}) as pan_all_runs
    where length(pan_run) >= 13)
  {%- endset -%}
  {%- set window -%}
    over (partition by pan_cell_id, pan_run_no order by pan_group_no)
  {%- endset -%}
  select {% for c in columns %}{{ c }}, {% endfor %}pan_digits
  from (
    select {% for c in columns %}{{ c }}, {% endfor %}
      case pan_window_groups
        when 1 then case when length(g1) between 13 and 19 then g1 end
        {%- for n in range(3, 7) %}
        when {{ n }} then case when
          {%- for i in range(1, n + 1) %} length(g{{ i }}) between 3 and 6
            {{- ' and' if not loop.last }}{% endfor %}
          then {% for i in range(1, n + 1) %}g{{ i }}{{ ' || ' if not loop.last }}{% endfor %} end
        {%- endfor %}
      end as pan_digits,
      {#- a window function keeps the planner (PostgreSQL's) from copying the case expression
          into every reference the Luhn check below makes to pan_digits -#}
      row_number() over () as pan_candidate_no
    from (
      select {% for c in columns %}{{ c }}, {% endfor %}pan_group as g1
        {%- for i in range(1, 6) %},
        lead(pan_group, {{ i }}) {{ window }} as g{{ i + 1 }}
        {%- endfor %}
      from ({{ pan_unnest_matches(runs, 'pan_run', '[0-9]+', cell + ['pan_run_no'],
                                  'pan_group', 'pan_group_no') }}) as pan_groups
    ) as pan_windows
    cross join (
      select 1 as pan_window_groups union all select 3 union all select 4
      union all select 5 union all select 6
    ) as pan_window_sizes
  ) as pan_candidates
  where length(pan_digits) between 13 and 19
    and substr(pan_digits, 1, 1) in ('2', '3', '4', '5', '6')
    and {{ luhn_valid('pan_digits') }}
{%- endmacro %}
