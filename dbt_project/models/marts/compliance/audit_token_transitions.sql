{#- Every transition with its provenance (actor, reason, source location, recorded and loaded
    times), the hash chain recomputed in SQL (the canonical text of state_service/chain.py, its
    sha256, the expected prev_hash and version) and the row compared with what the checkpoints
    recorded of it (joined on token_ref and transition_id: its version, content hash, row hash
    and whether its seal held then), and a verdict per row: 'verified' only when every
    comparison positively holds (a missing value never counts as agreement). A token's rows are
    ordered by version, then transition_id, so a forked chain (two rows with one version) reads
    the same on every run. Incremental: a run re-verifies the whole chain of every token with
    transitions or checkpoint records loaded since the last run, and replaces the token's rows
    whole (delete+insert by token_ref): a row gone upstream leaves no verdict behind. -#}
{{ config(materialized='incremental', unique_key='token_ref', cluster_by=['token_ref']) }}
{%- set verifiable = hash_verifiable_in_sql() -%}
with

{% if is_incremental() -%}
touched_tokens as (

    {{ tokens_touched_since_last_run() }}
    union
    select token_ref from {{ ref('stg_audit__chain_checkpoints') }}
    where loaded_at > {{ last_transformed_at() }}

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

checkpointed as (

    select * from {{ ref('stg_audit__chain_checkpoints') }}

),

chained as (

    select
        transitions.*,
        lag(transitions.transition_id) over (
            partition by transitions.token_ref
            order by transitions.token_version, transitions.transition_id
        ) as previous_transition_id,
        lag(transitions.row_hash) over (
            partition by transitions.token_ref
            order by transitions.token_version, transitions.transition_id
        ) as previous_row_hash,
        lag(transitions.token_version) over (
            partition by transitions.token_ref
            order by transitions.token_version, transitions.transition_id
        ) as previous_version,
        lag(transitions.to_state) over (
            partition by transitions.token_ref
            order by transitions.token_version, transitions.transition_id
        ) as previous_to_state,
        lag(transitions.actor) over (
            partition by transitions.token_ref
            order by transitions.token_version, transitions.transition_id
        ) as previous_actor,
        lag(transitions.reason_code) over (
            partition by transitions.token_ref
            order by transitions.token_version, transitions.transition_id
        ) as previous_reason_code,
        {{ chain_canonical_text('transitions', chain_canonical_fields()) }} as canonical_text,
        {{ chain_canonical_text('transitions', chain_content_fields()) }} as content_text

    from transitions

),

compared as (

    select
        chained.*,
        case when chained.previous_transition_id is null then {{ chain_genesis_hash() }}
             else chained.previous_row_hash end as expected_prev_hash,
        case when chained.previous_transition_id is null then 1
             else chained.previous_version + 1 end as expected_version,
        {{ sha256_hex('chained.canonical_text') }} as recomputed_row_hash,
        -- the content hash only serves the comparison with a checkpoint record: a row no
        -- checkpoint recorded yet is not hashed twice
        case when checkpointed.transition_id is not null
             then {{ sha256_hex('chained.content_text') }} end as recomputed_content_hash,
        checkpointed.checkpoint_seq,
        checkpointed.checkpointed_version,
        checkpointed.checkpoint_row_hash,
        checkpointed.checkpoint_content_hash,
        checkpointed.is_sealed as is_checkpoint_sealed,
        checkpointed.transition_id is not null as is_checkpointed,
        -- the row's content as it would read at its checkpointed version: only for a row
        -- that sits at another version (rare), to tell a moved row from an edited one
        case when checkpointed.is_sealed
                  and {{ null_safe_differs('checkpointed.checkpointed_version', 'chained.token_version') }}
             then {{ sha256_hex(chain_canonical_text('chained', chain_content_fields(),
                                                     {'version': 'checkpointed.checkpointed_version'})) }}
        end as content_hash_at_checkpointed_version

    from chained
    left join checkpointed
        on chained.token_ref = checkpointed.token_ref
        and chained.transition_id = checkpointed.transition_id

),

verified as (

    select
        compared.*,
        case
            when not compared.is_checkpointed then 'not_checkpointed'
            when not compared.is_checkpoint_sealed then 'unsealed'
            {% if verifiable -%}
            when {{ positively_equal('compared.token_version', 'compared.checkpointed_version') }} then
                case
                    when not {{ positively_equal('compared.recomputed_content_hash', 'compared.checkpoint_content_hash') }}
                        then 'content_changed'
                    when not {{ positively_equal('compared.row_hash', 'compared.checkpoint_row_hash') }}
                        then 'row_hash_differs'
                    else 'matches'
                end
            when {{ positively_equal('compared.content_hash_at_checkpointed_version', 'compared.checkpoint_content_hash') }}
                then 'moved'
            else 'content_changed'
            {%- else -%}
            else 'not_verified_in_sql'
            {%- endif %}
        end as checkpoint_status

    from compared

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
        verified.previous_version,
        verified.previous_to_state,
        verified.previous_actor,
        verified.previous_reason_code,
        not {{ null_safe_differs('verified.from_state', 'verified.previous_to_state') }} as follows_previous_state,
        verified.prev_hash,
        verified.row_hash,
        verified.expected_prev_hash,
        verified.expected_version,
        verified.recomputed_row_hash,
        verified.recomputed_content_hash,
        {{ 'true' if verifiable else 'false' }} as is_hash_verified_in_sql,
        verified.checkpoint_seq,
        verified.checkpointed_version,
        verified.checkpoint_row_hash,
        verified.checkpoint_content_hash,
        verified.is_checkpoint_sealed,
        verified.checkpoint_status,
        case
            when not {{ positively_equal('verified.token_version', 'verified.expected_version') }} then 'version_gap'
            when not {{ positively_equal('verified.prev_hash', 'verified.expected_prev_hash') }} then 'prev_hash_mismatch'
            {% if verifiable -%}
            when not {{ positively_equal('verified.recomputed_row_hash', 'verified.row_hash') }} then 'row_hash_mismatch'
            when verified.checkpoint_status not in ('matches', 'not_checkpointed') then 'checkpoint_mismatch'
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
