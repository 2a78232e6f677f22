{#- Timestamps: the raw layer stores timestamptz; staging turns every one into a timestamp
    without time zone in UTC, so day boundaries and text forms never depend on the session
    time zone of the target. -#}

{% macro to_utc_timestamp(column) -%}
  {{ return(adapter.dispatch('to_utc_timestamp', 'tokenwatch')(column)) }}
{%- endmacro %}

{% macro default__to_utc_timestamp(column) -%}
  cast(({{ column }} at time zone 'UTC') as timestamp)
{%- endmacro %}

{% macro snowflake__to_utc_timestamp(column) -%}
  cast(convert_timezone('UTC', {{ column }}) as timestamp_ntz)
{%- endmacro %}


{#- Seconds (with microseconds) from start_ts to end_ts; negative when end_ts is earlier.
    dbt.datediff counts boundaries crossed in whole units, which is not a duration. -#}
{% macro seconds_between(start_ts, end_ts) -%}
  {{ return(adapter.dispatch('seconds_between', 'tokenwatch')(start_ts, end_ts)) }}
{%- endmacro %}

{% macro default__seconds_between(start_ts, end_ts) -%}
  cast(extract(epoch from ({{ end_ts }} - {{ start_ts }})) as {{ type_double() }})
{%- endmacro %}

{% macro duckdb__seconds_between(start_ts, end_ts) -%}
  ((epoch_us({{ end_ts }}) - epoch_us({{ start_ts }})) / 1000000.0)
{%- endmacro %}

{% macro snowflake__seconds_between(start_ts, end_ts) -%}
  (datediff('microsecond', {{ start_ts }}, {{ end_ts }}) / 1000000.0)
{%- endmacro %}


{#- The hash chain's text form of a UTC timestamp: YYYY-MM-DDTHH:MM:SS.ffffffZ
    (state_service/chain.py format_ts). -#}
{% macro chain_timestamp_text(ts) -%}
  {{ return(adapter.dispatch('chain_timestamp_text', 'tokenwatch')(ts)) }}
{%- endmacro %}

{% macro default__chain_timestamp_text(ts) -%}
  to_char({{ ts }}, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
{%- endmacro %}

{% macro duckdb__chain_timestamp_text(ts) -%}
  strftime({{ ts }}, '%Y-%m-%dT%H:%M:%S.%fZ')
{%- endmacro %}

{% macro snowflake__chain_timestamp_text(ts) -%}
  to_char({{ ts }}, 'YYYY-MM-DD') || 'T' || to_char({{ ts }}, 'HH24:MI:SS.FF6') || 'Z'
{%- endmacro %}


{#- A far-future timestamp standing in for "still open" in range joins. -#}
{% macro open_ended() -%}
  cast('9999-12-31 00:00:00' as timestamp)
{%- endmacro %}


{#- Whole seconds from start_ts to end_ts as text (the same text on every target). -#}
{% macro whole_seconds_text(start_ts, end_ts) -%}
  cast(cast(floor({{ seconds_between(start_ts, end_ts) }}) as bigint) as {{ dbt.type_string() }})
{%- endmacro %}


{#- Whether an event time is plausible: not before the var earliest_event_date (a device clock
    at the epoch is not activity) and not later than when the record arrived (its load or
    arrival time) by more than max_clock_skew_seconds. The one rule: the calendar
    (int_calendar_days) spans plausible times only; audit_exceptions names the others. -#}
{% macro is_plausible_event_time(event_ts, arrived_ts) -%}
  ({{ event_ts }} >= cast('{{ var("earliest_event_date") }}' as timestamp)
   and {{ event_ts }} <= {{ dbt.dateadd('second', var('max_clock_skew_seconds'), arrived_ts) }})
{%- endmacro %}
