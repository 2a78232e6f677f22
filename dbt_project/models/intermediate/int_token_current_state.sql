{#- One row per token with transitions: its latest transition (the state it is in now). -#}
with

transitions as (

    select * from {{ ref('stg_state_service__token_state_transitions') }}

),

ranked as (

    select
        *,
        row_number() over (
            partition by token_ref order by token_version desc
        ) as recency_rank

    from transitions

),

final as (

    select
        token_ref,
        wallet_id,
        network,
        token_type,
        to_state as current_state,
        token_version as current_version,
        occurred_at as state_entered_at,
        recorded_at as state_recorded_at,
        actor as state_changed_by,
        reason_code as state_reason_code

    from ranked
    where recency_rank = 1

)

select * from final
