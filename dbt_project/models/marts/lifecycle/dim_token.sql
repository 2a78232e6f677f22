{{ config(materialized='incremental', unique_key='token_ref', cluster_by=['token_ref']) }}
{#- One row per token with at least one transition: current state, wallet, network, type, key
    provisioning dates, and when it was first and last seen in any source. Incremental: a run
    recomputes the tokens with transitions or wallet events loaded since the last run. -#}
with

{% if is_incremental() -%}
touched_tokens as (

    {{ tokens_touched_since_last_run(include_wallet_events=true) }}

),

{% endif -%}
current_state as (

    select * from {{ ref('int_token_current_state') }}
    {% if is_incremental() -%}
    where token_ref in (select token_ref from touched_tokens)
    {%- endif %}

),

states as (

    select * from {{ ref('lifecycle_states') }}

),

attempts as (

    select * from {{ ref('int_provisioning_attempts') }}

),

transitions as (

    select * from {{ ref('int_token_transitions') }}
    {% if is_incremental() -%}
    where token_ref in (select token_ref from touched_tokens)
    {%- endif %}

),

wallet_events as (

    select * from {{ ref('int_wallet_events') }}
    {% if is_incremental() -%}
    where token_ref in (select token_ref from touched_tokens)
    {%- endif %}

),

transition_activity as (

    select
        token_ref,
        min(occurred_at) as first_transition_at,
        max(occurred_at) as last_transition_at,
        count(*) as transitions

    from transitions
    group by token_ref

),

event_activity as (

    select
        token_ref,
        min(event_time) as first_event_at,
        max(event_time) as last_event_at,
        count(*) as wallet_events,
        {{ count_if("event_type = 'token_used'") }} as authorisations

    from wallet_events
    group by token_ref

),

final as (

    select
        current_state.token_ref,
        current_state.wallet_id,
        current_state.network,
        current_state.token_type,
        current_state.current_state,
        states.phase as current_phase,
        coalesce(states.is_terminal, false) as is_terminal,
        current_state.current_version,
        current_state.state_entered_at,
        current_state.state_recorded_at,
        current_state.state_changed_by,
        current_state.state_reason_code,
        attempts.token_ref is not null as has_token_requested,
        attempts.requested_at,
        attempts.decision,
        attempts.wallet_active_at,
        attempts.provisioning_outcome,
        case
            when event_activity.first_event_at < transition_activity.first_transition_at
                then event_activity.first_event_at
            else transition_activity.first_transition_at
        end as first_seen_at,
        case
            when event_activity.last_event_at > transition_activity.last_transition_at
                then event_activity.last_event_at
            else transition_activity.last_transition_at
        end as last_seen_at,
        transition_activity.transitions,
        coalesce(event_activity.wallet_events, 0) as wallet_events,
        coalesce(event_activity.authorisations, 0) as authorisations,
        {{ transformed_at() }} as transformed_at

    from current_state
    inner join transition_activity
        on current_state.token_ref = transition_activity.token_ref
    left join states
        on current_state.current_state = states.state
    left join attempts
        on current_state.token_ref = attempts.token_ref
    left join event_activity
        on current_state.token_ref = event_activity.token_ref

)

select * from final
