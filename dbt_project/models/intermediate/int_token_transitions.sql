{{ config(materialized='incremental', unique_key='transition_id') }}
{#- The deduplicated transition log, materialized incrementally: each run copies the rows
    loaded since the last one (minus the lookback) from the staging view, so the window that
    dedupes runs once per build and downstream models read a table. Flags rows whose text
    holds a run of 13-19 digits, the candidates of the card-number scan. -#}
{%- set text_columns = ['token_ref', 'event_id', 'from_state', 'to_state', 'actor',
                        'reason_code', 'decision', 'idv_method', 'wallet_id', 'network',
                        'token_type', 'source_location'] -%}
with

transitions as (

    select * from {{ ref('stg_state_service__token_state_transitions') }}
    {% if is_incremental() -%}
    where loaded_at > {{ incremental_watermark('loaded_at') }}
        or {{ in_partition_window('occurred_at') }}
    {%- endif %}

),

final as (

    select
        *,
        {{ regexp_contains(text_columns_joined(text_columns), pan_candidate_pattern()) }} as has_pan_candidate

    from transitions

)

select * from final
