{#- Percentile with linear interpolation (identical on every target). -#}
{% macro percentile(expr, fraction) -%}
  {{ return(adapter.dispatch('percentile', 'tokenwatch')(expr, fraction)) }}
{%- endmacro %}

{% macro default__percentile(expr, fraction) -%}
  percentile_cont({{ fraction }}) within group (order by {{ expr }})
{%- endmacro %}

{% macro duckdb__percentile(expr, fraction) -%}
  quantile_cont({{ expr }}, {{ fraction }})
{%- endmacro %}

{#- A latency percentile of the operational KPIs (API Gateway latency, Lambda duration and the
    wallets' provisioning latency, p50/p95/p99): approximate where the warehouse makes that
    cheaper at scale, exact elsewhere. Snowflake's APPROX_PERCENTILE (t-digest, with a
    constant relative error by Snowflake's documentation, small for the large groups of a
    production day; Datadog's own distribution percentiles are sketches too) avoids the sort
    per group of PERCENTILE_CONT. On DuckDB approx_quantile measured slower than
    quantile_cont (0.6-1.1 s against 0.3-0.5 s for wallet_service_daily at 1M tokens), and
    PostgreSQL has none: both stay exact. Every other percentile (time to activate, state durations) is exact on every
    target: partners and auditors read those. -#}
{% macro latency_percentile(expr, fraction) -%}
  {{ return(adapter.dispatch('latency_percentile', 'tokenwatch')(expr, fraction)) }}
{%- endmacro %}

{% macro default__latency_percentile(expr, fraction) -%}
  {{ percentile(expr, fraction) }}
{%- endmacro %}

{% macro snowflake__latency_percentile(expr, fraction) -%}
  approx_percentile({{ expr }}, {{ fraction }})
{%- endmacro %}


{#- Round a floating-point value to `digits` decimals (half up), as a float. The same
    IEEE arithmetic on every target, so DuckDB and PostgreSQL agree to the last digit
    (PostgreSQL's round() takes numeric only, and rounds a decimal conversion). -#}
{% macro round_to(expr, digits) -%}
  (floor(({{ expr }}) * {{ 10 ** digits }} + 0.5) / {{ 10 ** digits }})
{%- endmacro %}


{#- numerator / denominator as a float rounded to 6 decimals; null when the denominator is 0. -#}
{% macro safe_ratio(numerator, denominator) -%}
  {{ round_to('cast(' ~ numerator ~ ' as ' ~ type_double() ~ ') / nullif(' ~ denominator ~ ', 0)', 6) }}
{%- endmacro %}


{#- Rows n = 0 .. count-1 from cross joins of digits: no generate_series, works everywhere. -#}
{% macro integer_series(count) -%}
  {%- set digits = (count - 1) | string | length -%}
  select
    {% for i in range(digits) -%}
      d{{ i }}.n * {{ 10 ** i }}{{ ' + ' if not loop.last }}
    {%- endfor %} as n
  from
    {% for i in range(digits) -%}
      (select 0 as n union all select 1 union all select 2 union all select 3 union all
       select 4 union all select 5 union all select 6 union all select 7 union all
       select 8 union all select 9) as d{{ i }}{{ ',' if not loop.last }}
    {% endfor %}
  where
    {% for i in range(digits) -%}
      d{{ i }}.n * {{ 10 ** i }}{{ ' + ' if not loop.last }}
    {%- endfor %} < {{ count }}
{%- endmacro %}


{#- A readable composite key: the parts cast to text and joined with '|'. -#}
{% macro composite_key(columns) -%}
  {%- set parts = [] -%}
  {%- for column in columns -%}
    {%- do parts.append("coalesce(cast(" ~ column ~ " as " ~ dbt.type_string() ~ "), '')") -%}
    {%- if not loop.last %}{% do parts.append("'|'") %}{% endif -%}
  {%- endfor -%}
  {{ dbt.concat(parts) }}
{%- endmacro %}


{#- Integer count of rows where `condition` holds. -#}
{% macro count_if(condition) -%}
  cast(sum(case when {{ condition }} then 1 else 0 end) as bigint)
{%- endmacro %}


{#- The columns as text joined with '|' (nulls as empty), for one regex test per row. -#}
{% macro text_columns_joined(columns) -%}
  {%- set parts = [] -%}
  {%- for column in columns -%}
    {%- do parts.append("coalesce(cast(" ~ column ~ " as " ~ dbt.type_string() ~ "), '')") -%}
    {%- if not loop.last %}{% do parts.append("'|'") %}{% endif -%}
  {%- endfor -%}
  {{ dbt.concat(parts) }}
{%- endmacro %}


{#- The incremental watermark: the highest load this model has read (`column`, a load_seq:
    raw._loads numbers each load of a raw table in commit order, ingestion/warehouse/base.py).
    A row is new when its load's number is higher. A load that commits hours after its rows'
    `_loaded_at` stamp (the worker's clock, taken before the commit) still gets a higher
    number than every load that committed before it, so no lookback is needed and none can
    be too short: the watermark on `_loaded_at` minus 3 hours missed such a load. An empty
    target reads everything. -#}
{% macro incremental_watermark(column='load_seq') -%}
  (select coalesce(max({{ column }}), -1) from {{ this }})
{%- endmacro %}


{#- The `_loaded_at` stamps of the loads of raw table `table_name` numbered above `watermark`,
    by with_load_seq's rule (a stamp's load is the highest number registered for it): an
    incremental model filters the raw table by them (`_loaded_at in (...)`) instead of joining
    every row to its load number first, so the warehouse skips the blocks of older stamps. -#}
{% macro stamps_loaded_after(table_name, watermark) -%}
    select loaded_at
    from {{ source('ingestion', '_loads') }}
    where table_name = '{{ table_name }}'
    group by loaded_at
    having max(load_seq) > {{ watermark }}
{%- endmacro %}


{#- The `key`s of raw table `table_name` (source `source_name`) in the loads numbered above
    `watermark`, or whose `time_column` (raw, as loaded) falls in the partition's window:
    what an incremental model re-reads every copy of (int_token_transitions, int_wallet_events,
    int_api_requests). -#}
{% macro keys_of_new_loads(source_name, table_name, key, watermark, time_column=none) -%}
    select {{ key }} from {{ source(source_name, table_name) }}
    where _loaded_at in ({{ stamps_loaded_after(table_name, watermark) }})
    {%- if time_column %}
        or {{ in_partition_window(to_utc_timestamp(time_column)) }}
    {%- endif %}
{%- endmacro %}


{#- The rows of the raw table `relation` (source `table_name`) with the number of the load
    that wrote them, `_load_seq` (raw._loads; several loads of one stamp: the latest). A row
    no load registered (written before raw._loads existed, or not by ingestion) is 0: a full
    build reads it, an incremental run does not. -#}
{% macro with_load_seq(relation, table_name) -%}
    select raw_rows.*, coalesce(loads.load_seq, 0) as _load_seq
    from {{ relation }} as raw_rows
    left join (
        select loaded_at, max(load_seq) as load_seq
        from {{ source('ingestion', '_loads') }}
        where table_name = '{{ table_name }}'
        group by loaded_at
    ) as loads
        on loads.loaded_at = raw_rows._loaded_at
{%- endmacro %}


{#- An 8-byte floating-point type (dbt.type_float() is a 4-byte FLOAT on DuckDB). -#}
{% macro type_double() -%}
  {{ return(adapter.dispatch('type_double', 'tokenwatch')()) }}
{%- endmacro %}

{% macro default__type_double() -%}
  double precision
{%- endmacro %}

{% macro duckdb__type_double() -%}
  double
{%- endmacro %}

{% macro snowflake__type_double() -%}
  float
{%- endmacro %}


{#- When this dbt invocation started, as a UTC timestamp: the `transformed_at` of every row an
    incremental model writes, and so the watermark of the incremental models downstream. -#}
{% macro transformed_at() -%}
  cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S.%f") }}' as timestamp)
{%- endmacro %}


{#- The newest transformed_at already in this incremental model (1900 when it is empty):
    upstream rows written by a later run are new to it. -#}
{% macro last_transformed_at() -%}
  (select coalesce(max(transformed_at), cast('1900-01-01 00:00:00' as timestamp))
   from {{ this }})
{%- endmacro %}


{#- In an incremental run of a per-token model: the tokens whose transitions (and, optionally,
    wallet events of `event_types`) were copied into the incremental intermediate tables since
    this model's last run. -#}
{% macro tokens_touched_since_last_run(include_wallet_events=false, event_types=none) -%}
    select token_ref from {{ ref('int_token_transitions') }}
    where transformed_at > {{ last_transformed_at() }}
    {%- if include_wallet_events %}
    union
    select token_ref from {{ ref('int_wallet_events') }}
    where transformed_at > {{ last_transformed_at() }}
    {%- if event_types %}
        and event_type in ('{{ event_types | join("', '") }}')
    {%- endif %}
    {%- endif %}
{%- endmacro %}


{#- True for rows whose `column` (an event time) falls in the days being (re)built by the
    orchestrator: vars partition_start (inclusive) and partition_end (exclusive), ISO dates
    that Dagster passes for a partition or a backfill. False when they are not set. -#}
{% macro in_partition_window(column) -%}
  {%- set start, end = var('partition_start', none), var('partition_end', none) -%}
  {%- if start and end -%}
    ({{ column }} >= cast('{{ start }}' as timestamp) and {{ column }} < cast('{{ end }}' as timestamp))
  {%- else -%}
    (1 = 0)
  {%- endif -%}
{%- endmacro %}
