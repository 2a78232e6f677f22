{#- Card-number (PAN) detection in SQL, the same rule as state_service/pan.py: a maximal run
    of 13-19 digits (no digit on either side) that passes the Luhn check. -#}

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


{#- select <columns>, <digit run> as digit_run from <relation>: one output row per maximal run
    of at least 13 digits in text_column (rows without one produce nothing). -#}
{% macro select_digit_runs(relation, text_column, columns) -%}
  {{ return(adapter.dispatch('select_digit_runs', 'tokenwatch')(relation, text_column, columns)) }}
{%- endmacro %}

{% macro default__select_digit_runs(relation, text_column, columns) -%}
  select {% for c in columns %}r.{{ c }}, {% endfor %}m.run[1] as digit_run
  from {{ relation }} as r
  cross join lateral regexp_matches(r.{{ text_column }}, '[0-9]{13,}', 'g') as m(run)
{%- endmacro %}

{% macro duckdb__select_digit_runs(relation, text_column, columns) -%}
  select {% for c in columns %}{{ c }}, {% endfor %}digit_run
  from (
    select {% for c in columns %}{{ c }}, {% endfor %}
      unnest(regexp_extract_all({{ text_column }}, '[0-9]{13,}')) as digit_run
    from {{ relation }}
  ) as runs
{%- endmacro %}

{% macro snowflake__select_digit_runs(relation, text_column, columns) -%}
  select {% for c in columns %}r.{{ c }}, {% endfor %}cast(m.value as varchar) as digit_run
  from {{ relation }} as r,
    lateral flatten(input => regexp_substr_all(r.{{ text_column }}, '[0-9]{13,}')) as m
{%- endmacro %}


{#- True when `digits` (a string of 13-19 digits) passes the Luhn check: plain arithmetic on
    substrings, so it is the same SQL on every target. -#}
{% macro luhn_valid(digits) -%}
  ((
  {%- for i in range(19) %}
    case when length({{ digits }}) > {{ i }} then
      {%- set d = "cast(substr(" ~ digits ~ ", length(" ~ digits ~ ") - " ~ i ~ ", 1) as integer)" %}
      {%- if i % 2 == 0 %} {{ d }}
      {%- else %} (2 * {{ d }} - case when {{ d }} >= 5 then 9 else 0 end)
      {%- endif %}
    else 0 end{{ ' +' if not loop.last }}
  {%- endfor %}
  ) % 10 = 0)
{%- endmacro %}


{#- A PAN shown as PCI DSS allows at most: first six and last four digits. -#}
{% macro mask_pan(digits) -%}
  {{ dbt.concat(["substr(" ~ digits ~ ", 1, 6)",
                 "repeat('*', length(" ~ digits ~ ") - 10)",
                 dbt.right(digits, "4")]) }}
{%- endmacro %}


{#- A maximal run of 13-19 digits somewhere in the text (the prefilter before extracting runs
    and checking Luhn): longer runs, such as 56-digit Kinesis sequence numbers, do not match. -#}
{% macro pan_candidate_pattern() -%}
  {{ return('(^|[^0-9])[0-9]{13,19}([^0-9]|$)') }}
{%- endmacro %}
