{#- Every transition with its provenance (actor, reason, source location, recorded and loaded
    times) and the hash chain recomputed in SQL: the canonical text of state_service/chain.py,
    its sha256, the expected prev_hash and version, and a verdict per row. Incremental: a run
    re-verifies the whole chain of every token with transitions loaded since the last run. -#}
{{ config(materialized='incremental', unique_key='transition_id') }}
{%- set verifiable = hash_verifiable_in_sql() -%}
with

{% if is_incremental() -%}
touched_tokens as (

    {{ tokens_touched_since_last_run() }}

),

{% endif -%}
transitions as (

    select * from {{ ref('int_token_transitions') }}
    {% if is_incremental() -%}
    where token_ref in (select token_ref from touched_tokens)
    {%- endif %}

),

legal_transitions as (

    select * from {{ ref('lifecycle_transitions') }}

),

states as (

    select * from {{ ref('lifecycle_states') }}

),

chained as (

    select
        transitions.*,
        lag(transitions.row_hash) over (
            partition by transitions.token_ref order by transitions.token_version
        ) as previous_row_hash,
        lag(transitions.token_version) over (
            partition by transitions.token_ref order by transitions.token_version
        ) as previous_version,
        lag(transitions.to_state) over (
            partition by transitions.token_ref order by transitions.token_version
        ) as previous_to_state,
        {{ dbt.concat([
            'transitions.token_ref', "'|'",
            'cast(transitions.token_version as ' ~ dbt.type_string() ~ ')', "'|'",
            'transitions.event_id', "'|'",
            "coalesce(transitions.from_state, '')", "'|'",
            'transitions.to_state', "'|'",
            'transitions.actor', "'|'",
            "coalesce(transitions.reason_code, '')", "'|'",
            "coalesce(transitions.decision, '')", "'|'",
            "coalesce(transitions.idv_method, '')", "'|'",
            'transitions.wallet_id', "'|'",
            'transitions.network', "'|'",
            'transitions.token_type', "'|'",
            chain_timestamp_text('transitions.occurred_at'), "'|'",
            chain_timestamp_text('transitions.recorded_at'), "'|'",
            'transitions.prev_hash'
        ]) }} as canonical_text

    from transitions

),

verified as (

    select
        chained.*,
        coalesce(chained.previous_row_hash, '{{ "0" * 64 }}') as expected_prev_hash,
        coalesce(chained.previous_version + 1, 1) as expected_version,
        {{ sha256_hex('chained.canonical_text') }} as recomputed_row_hash

    from chained

),

final as (

    select
        verified.transition_id,
        verified.token_ref,
        verified.token_version,
        verified.event_id,
        verified.from_state,
        verified.to_state,
        verified.actor,
        verified.reason_code,
        verified.decision,
        verified.idv_method,
        verified.wallet_id,
        verified.network,
        verified.token_type,
        verified.occurred_at,
        verified.recorded_at,
        verified.loaded_at,
        verified.source_location,
        verified.xact_id,
        case
            when verified.from_state is null then coalesce(states.is_initial, false)
            else legal_transitions.transition_key is not null
        end as is_legal_transition,
        verified.previous_to_state,
        coalesce(verified.from_state = verified.previous_to_state,
                 verified.from_state is null and verified.previous_to_state is null) as follows_previous_state,
        verified.prev_hash,
        verified.row_hash,
        verified.expected_prev_hash,
        verified.expected_version,
        verified.recomputed_row_hash,
        {{ 'true' if verifiable else 'false' }} as is_hash_verified_in_sql,
        case
            when verified.token_version <> verified.expected_version then 'version_gap'
            when verified.prev_hash <> verified.expected_prev_hash then 'prev_hash_mismatch'
            {% if verifiable -%}
            when verified.recomputed_row_hash <> verified.row_hash then 'row_hash_mismatch'
            else 'verified'
            {%- else -%}
            else 'not_verified_in_sql'
            {%- endif %}
        end as chain_status,
        {{ transformed_at() }} as transformed_at

    from verified
    left join legal_transitions
        on verified.from_state = legal_transitions.from_state
        and verified.to_state = legal_transitions.to_state
    left join states
        on verified.to_state = states.state

)

select * from final
