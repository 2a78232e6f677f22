{#- The hash chain of state_service/chain.py in SQL, and null-safe comparisons for the audit
    marts (a comparison with a missing value must never count as agreement). -#}


{#- True when a and b differ, a null against a value included (false only when both are
    null or both are equal). DuckDB, PostgreSQL and Snowflake all have IS DISTINCT FROM. -#}
{% macro null_safe_differs(a, b) -%}
  {{ return(adapter.dispatch('null_safe_differs', 'tokenwatch')(a, b)) }}
{%- endmacro %}

{% macro default__null_safe_differs(a, b) -%}
  ({{ a }} is distinct from {{ b }})
{%- endmacro %}


{#- True only when a and b are both present and equal: the form a check must take before a
    row may be called verified (null = null is not evidence of anything). -#}
{% macro positively_equal(a, b) -%}
  coalesce({{ a }} = {{ b }}, false)
{%- endmacro %}


{#- chain.CANONICAL_FIELDS, in order: the text row_hash is the sha256 of. -#}
{% macro chain_canonical_fields() -%}
  {{ return(['token_ref', 'version', 'event_id', 'from_state', 'to_state', 'actor',
             'reason_code', 'decision', 'idv_method', 'wallet_id', 'network', 'token_type',
             'occurred_at', 'recorded_at', 'prev_hash']) }}
{%- endmacro %}


{#- chain.CONTENT_FIELDS: the row's identity, then every canonical field but prev_hash: the
    text a checkpoint's content_hash is the sha256 of. -#}
{% macro chain_content_fields() -%}
  {{ return(['transition_id', 'xact_id'] + (chain_canonical_fields() | reject('equalto', 'prev_hash') | list)) }}
{%- endmacro %}


{#- chain.canonical(row, fields) over the columns of `relation` (an alias): each field as
    text, NULL as '', timestamps as YYYY-MM-DDTHH:MM:SS.ffffffZ (UTC), joined with '|'.
    The warehouse names the version column token_version; `overrides` maps a field to another
    SQL expression (the content of a row as it would read at another version, say). -#}
{% macro chain_canonical_text(relation, fields, overrides={}) -%}
  {%- set columns = {'version': 'token_version'} -%}
  {%- set parts = [] -%}
  {%- for field in fields -%}
    {%- set expr = overrides.get(field, relation ~ '.' ~ columns.get(field, field)) -%}
    {%- if field in ('occurred_at', 'recorded_at') -%}
      {%- do parts.append("coalesce(" ~ chain_timestamp_text(expr) ~ ", '')") -%}
    {%- else -%}
      {%- do parts.append("coalesce(cast(" ~ expr ~ " as " ~ dbt.type_string() ~ "), '')") -%}
    {%- endif -%}
    {%- if not loop.last %}{% do parts.append("'|'") %}{% endif -%}
  {%- endfor -%}
  {{ dbt.concat(parts) }}
{%- endmacro %}


{#- chain.GENESIS_HASH: what the first row of a token chains from. -#}
{% macro chain_genesis_hash() -%}
  '{{ "0" * 64 }}'
{%- endmacro %}
