{{ config(materialized='incremental', unique_key='transition_id', cluster_by=['cast(occurred_at as date)']) }}
{#- One row per recorded transition. Incremental: each run adds (or replaces, by
    transition_id) the rows int_token_transitions copied since this model's last run. -#}
with

transitions as (

    select * from {{ ref('int_token_transitions') }}
    {% if is_incremental() -%}
    where transformed_at > {{ last_transformed_at() }}
    {%- endif %}

),

states as (

    select * from {{ ref('lifecycle_states') }}

),

legal_transitions as (

    select * from {{ ref('lifecycle_transitions') }}

),

final as (

    select
        transitions.transition_id,
        transitions.token_ref,
        transitions.token_version,
        transitions.event_id,
        transitions.from_state,
        transitions.to_state,
        states.phase as to_phase,
        transitions.actor,
        transitions.reason_code,
        transitions.decision,
        transitions.idv_method,
        transitions.wallet_id,
        transitions.network,
        transitions.token_type,
        transitions.occurred_at,
        cast(transitions.occurred_at as date) as occurred_date,
        transitions.recorded_at,
        {{ round_to(seconds_between('transitions.occurred_at', 'transitions.recorded_at'), 3) }} as recording_lag_seconds,
        transitions.from_state is null as is_creation,
        case
            when transitions.from_state is null then coalesce(states.is_initial, false)
            else legal_transitions.transition_key is not null
        end as is_legal_transition,
        transitions.loaded_at,
        transitions.source_location,
        transitions.transformed_at

    from transitions
    left join states
        on transitions.to_state = states.state
    left join legal_transitions
        on transitions.from_state = legal_transitions.from_state
        and transitions.to_state = legal_transitions.to_state

)

select * from final
