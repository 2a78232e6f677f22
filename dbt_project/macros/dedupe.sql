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


{#- `name as {{ not_materialized() }} (select * from ...)`: an import CTE that a model reads more
    than once is inlined into each reference, not materialized whole (DuckDB and PostgreSQL
    materialize a CTE read twice: audit_exceptions copied all of audit_token_transitions,
    every column, before filtering it eight ways: 70 s of a 4M-token incremental run).
    Snowflake has no such clause and plans CTEs itself. -#}
{% macro not_materialized() -%}
  {{ return(adapter.dispatch('not_materialized', 'tokenwatch')()) }}
{%- endmacro %}

{% macro default__not_materialized() -%}
  not materialized
{%- endmacro %}

{% macro snowflake__not_materialized() -%}
{%- endmacro %}
