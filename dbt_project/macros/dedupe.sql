{#- The first copy of each `key` in `relation` (a ref or a CTE's name), by `order_by`, with
    every column of the relation and no extra one. The staging models keep the first copy of
    a re-delivered record with it; the incremental models downstream apply the same rule to
    the copies of the keys that arrived since their last run (int_token_transitions,
    int_wallet_events, int_api_requests), so a full build and a run of increments agree. -#}
{% macro first_copy(relation, key, order_by) -%}
  {{ return(adapter.dispatch('first_copy', 'tokenwatch')(relation, key, order_by)) }}
{%- endmacro %}

{#- PostgreSQL: DISTINCT ON keeps the first row of each key in the ORDER BY. -#}
{% macro default__first_copy(relation, key, order_by) -%}
    select distinct on ({{ key }}) *
    from {{ relation }} as copies
    order by {{ key }}, {{ order_by }}
{%- endmacro %}

{#- DuckDB and Snowflake: QUALIFY filters on the window without selecting it. -#}
{% macro duckdb__first_copy(relation, key, order_by) -%}
    select *
    from {{ relation }} as copies
    qualify row_number() over (partition by {{ key }} order by {{ order_by }}) = 1
{%- endmacro %}

{% macro snowflake__first_copy(relation, key, order_by) -%}
    {{ duckdb__first_copy(relation, key, order_by) }}
{%- endmacro %}
