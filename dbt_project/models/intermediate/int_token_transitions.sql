{{ config(materialized='incremental', unique_key='transition_id', cluster_by=['token_ref']) }}
{#- The deduplicated transition log, materialized incrementally: each run copies the rows of
    the loads committed since the last one (load_seq above the highest here: loads are
    numbered in commit order, so a load that commits late is still read) and stamps them with
    the run's start (transformed_at): the per-token models downstream recompute the
    tokens of those rows. A full build reads the deduplicated staging view; an increment reads
    the raw rows of the new loads and deduplicates just their events. Flags rows whose text
    may hold a card number (pan_candidate_pattern), the candidates of the card-number
    scan. -#}
{%- set text_columns = ['token_ref', 'event_id', 'from_state', 'to_state', 'actor',
                        'reason_code', 'decision', 'idv_method', 'wallet_id', 'network',
                        'token_type', 'source_location'] -%}
with

{% if is_incremental() -%}
arrived as (

    -- the events of the loads committed since the last run (or in the partition's window),
    -- read from the raw table by the loads' stamps: a filter on the deduplicated staging
    -- view would stop at its window and scan and sort the whole log on every run
    {{ keys_of_new_loads('state_service', 'token_state_transitions', 'event_id',
                         incremental_watermark(), 'occurred_at') }}

),

copies as (

    -- every copy of those events, older ones included: the first copy is chosen among all
    -- of them, by the staging model's own rule, so increments and a full build agree
    select * from {{ ref('base_state_service__token_state_transitions') }}
    where event_id in (select event_id from arrived)

),

transitions as (

    {{ first_copy('copies', 'event_id', 'loaded_at, transition_id') }}

),
{%- else %}
transitions as (

    -- depends_on: {{ ref('base_state_service__token_state_transitions') }} (what an increment reads)
    select * from {{ ref('stg_state_service__token_state_transitions') }}

),
{%- endif %}

final as (

    select
        *,
        {{ transformed_at() }} as transformed_at,
        {{ regexp_contains(text_columns_joined(text_columns), pan_candidate_pattern()) }} as has_pan_candidate

    from transitions

)

select * from final
