{{ config(materialized='incremental', unique_key='event_id', cluster_by=['cast(event_time as date)']) }}
{#- The deduplicated wallet events, materialized incrementally (see int_token_transitions):
    one staging pass per build, a table downstream. Flags rows whose text may hold a
    card number (pan_candidate_pattern), the candidates of the card-number scan. -#}
{%- set text_columns = ['event_id', 'event_type', 'wallet_id', 'token_ref', 'request_id',
                        'network', 'token_type', 'decision', 'error_code', 'idv_method',
                        'idv_outcome', 'currency', 'merchant_category', 'new_state',
                        'reason_code', 'actor', 'extra_json', 'shard_id', 'sequence_number',
                        'source_location'] -%}
with

{% if is_incremental() -%}
arrived as (

    -- the events of the loads committed since the last run, from the raw table (see
    -- int_token_transitions), then every copy of them, deduplicated by the staging rule
    {{ keys_of_new_loads('wallet_stream', 'wallet_events', 'event_id',
                         incremental_watermark(), 'event_time') }}

),

copies as (

    select * from {{ ref('base_wallet_stream__wallet_events') }}
    where event_id in (select event_id from arrived)

),

wallet_events as (

    {{ first_copy('copies', 'event_id', 'loaded_at, arrived_at, source_location') }}

),
{%- else %}
wallet_events as (

    -- depends_on: {{ ref('base_wallet_stream__wallet_events') }} (what an increment reads)
    select * from {{ ref('stg_wallet_stream__wallet_events') }}

),
{%- endif %}

final as (

    select
        *,
        {{ transformed_at() }} as transformed_at,
        {{ regexp_contains(text_columns_joined(text_columns), pan_candidate_pattern()) }} as has_pan_candidate

    from wallet_events

)

select * from final
