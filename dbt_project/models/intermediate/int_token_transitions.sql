{{ config(materialized='incremental', unique_key='transition_id') }}
{#- The deduplicated transition log, materialized incrementally: each run copies the rows of
    the loads committed since the last one (load_seq above the highest here: loads are
    numbered in commit order, so a load that commits late is still read) and stamps them with
    the run's start (transformed_at): the per-token models downstream recompute the
    tokens of those rows. The staging view's dedupe runs once per build. Flags rows whose text
    may hold a card number (pan_candidate_pattern), the candidates of the card-number
    scan. -#}
{%- set text_columns = ['token_ref', 'event_id', 'from_state', 'to_state', 'actor',
                        'reason_code', 'decision', 'idv_method', 'wallet_id', 'network',
                        'token_type', 'source_location'] -%}
with

transitions as (

    select * from {{ ref('stg_state_service__token_state_transitions') }}
    {% if is_incremental() -%}
    where load_seq > {{ incremental_watermark() }}
        or {{ in_partition_window('occurred_at') }}
    {%- endif %}

),

final as (

    select
        *,
        {{ transformed_at() }} as transformed_at,
        {{ regexp_contains(text_columns_joined(text_columns), pan_candidate_pattern()) }} as has_pan_candidate

    from transitions

)

select * from final
