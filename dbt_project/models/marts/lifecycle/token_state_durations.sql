{#- Per wallet and state: how long tokens stay (completed visits), p50/p95 and mean, and how
    many are still in it. -#}
with

spans as (

    select * from {{ ref('int_token_lifecycle_spans') }}

),

states as (

    select * from {{ ref('lifecycle_states') }}

),

durations as (

    select
        wallet_id,
        state,
        count(*) as visits,
        {{ count_if('not is_current') }} as completed_visits,
        {{ count_if('is_current') }} as open_visits,
        {{ round_to(percentile('duration_seconds', 0.5), 3) }} as duration_p50_seconds,
        {{ round_to(percentile('duration_seconds', 0.95), 3) }} as duration_p95_seconds,
        {{ round_to('avg(duration_seconds)', 3) }} as duration_mean_seconds,
        {{ round_to('max(duration_seconds)', 3) }} as duration_max_seconds

    from spans
    group by wallet_id, state

),

final as (

    select
        {{ composite_key(['durations.wallet_id', 'durations.state']) }} as wallet_state_id,
        durations.wallet_id,
        durations.state,
        states.phase,
        states.state_order,
        coalesce(states.is_terminal, false) as is_terminal,
        durations.visits,
        durations.completed_visits,
        durations.open_visits,
        durations.duration_p50_seconds,
        durations.duration_p95_seconds,
        durations.duration_mean_seconds,
        durations.duration_max_seconds

    from durations
    left join states
        on durations.state = states.state

)

select * from final
