{#- sha256 of a text value as lowercase hex, where the target has it in SQL. -#}
{% macro sha256_hex(expr) -%}
  {{ return(adapter.dispatch('sha256_hex', 'tokenwatch')(expr)) }}
{%- endmacro %}

{% macro default__sha256_hex(expr) -%}
  cast(null as {{ dbt.type_string() }})
{%- endmacro %}

{% macro postgres__sha256_hex(expr) -%}
  encode(sha256(convert_to({{ expr }}, 'UTF8')), 'hex')
{%- endmacro %}

{% macro duckdb__sha256_hex(expr) -%}
  sha256({{ expr }})
{%- endmacro %}

{% macro snowflake__sha256_hex(expr) -%}
  lower(sha2({{ expr }}, 256))
{%- endmacro %}


{#- Whether sha256_hex computes a hash on this target (the audit mart says "not verified in
    SQL" where it does not). -#}
{% macro hash_verifiable_in_sql() -%}
  {{ return(adapter.dispatch('hash_verifiable_in_sql', 'tokenwatch')()) }}
{%- endmacro %}

{% macro default__hash_verifiable_in_sql() -%}
  {{ return(false) }}
{%- endmacro %}

{% macro postgres__hash_verifiable_in_sql() -%}
  {{ return(true) }}
{%- endmacro %}

{% macro duckdb__hash_verifiable_in_sql() -%}
  {{ return(true) }}
{%- endmacro %}

{% macro snowflake__hash_verifiable_in_sql() -%}
  {{ return(true) }}
{%- endmacro %}


{#- A JSON column as its text. -#}
{% macro json_to_text(expr) -%}
  {{ return(adapter.dispatch('json_to_text', 'tokenwatch')(expr)) }}
{%- endmacro %}

{% macro default__json_to_text(expr) -%}
  cast({{ expr }} as {{ dbt.type_string() }})
{%- endmacro %}

{% macro snowflake__json_to_text(expr) -%}
  to_json({{ expr }})
{%- endmacro %}
