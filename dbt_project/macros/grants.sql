{#- on-run-end: grant usage on the schema of every model that got select grants, to the same
    roles (dbt's grants config covers tables and views, not their schemas). PostgreSQL and
    Snowflake only; a no-op elsewhere (DuckDB has no roles) and when no role is configured. -#}
{% macro grant_schema_usage(results) -%}
  {%- if target.type not in ('postgres', 'snowflake') or not execute -%}
    {{ return('') }}
  {%- endif -%}
  {%- set pairs = [] -%}
  {%- for res in results -%}
    {%- set node = res.node -%}
    {%- if res.status in ('success', 'pass') and node.resource_type in ('model', 'snapshot', 'seed') -%}
      {%- set grants = node.config.get('grants') or {} -%}
      {%- for role in grants.get('select', []) -%}
        {%- set pair = (node.database, node.schema, role) -%}
        {%- if pair not in pairs %}{% do pairs.append(pair) %}{% endif -%}
      {%- endfor -%}
    {%- endif -%}
  {%- endfor -%}
  {%- set statements = [] -%}
  {%- for database, schema, role in pairs -%}
    {%- if target.type == 'snowflake' -%}
      {%- do statements.append('grant usage on database ' ~ database ~ ' to role ' ~ role) -%}
      {%- do statements.append('grant usage on schema ' ~ database ~ '.' ~ schema ~ ' to role ' ~ role) -%}
    {%- else -%}
      {#- role names unquoted, as dbt's own grant statements write them -#}
      {%- do statements.append('grant usage on schema ' ~ adapter.quote(schema) ~ ' to ' ~ role) -%}
    {%- endif -%}
  {%- endfor -%}
  {{ return(statements | join(';\n')) }}
{%- endmacro %}
