{#- Per day, wallet and state: tokens in that state at the day's end (UTC midnight), and
    tokens that entered it during the day. Every state of the lifecycle has a row, with zeros. -#}
with

days as (

    select * from {{ ref('int_calendar_days') }}

),

wallets as (

    -- the wallets with activity (dim_wallet's has_activity), from this folder's own
    -- dim_token: the lifecycle marts never read the wallet marts, which read them
    select distinct wallet_id from {{ ref('dim_token') }}

),

states as (

    select * from {{ ref('lifecycle_states') }}

),

spans as (

    select * from {{ ref('int_token_lifecycle_spans') }}

),

at_day_end as (

    select
        days.calendar_date,
        spans.wallet_id,
        spans.state,
        count(*) as tokens_at_day_end

    from spans
    inner join days
        on spans.entered_at < days.next_day_start
        and coalesce(spans.exited_at, {{ open_ended() }}) >= days.next_day_start
    group by days.calendar_date, spans.wallet_id, spans.state

),

entered as (

    select
        cast(entered_at as date) as calendar_date,
        wallet_id,
        state,
        count(*) as tokens_entered

    from spans
    group by cast(entered_at as date), wallet_id, state

),

grid as (

    select
        days.calendar_date,
        wallets.wallet_id,
        states.state,
        states.phase,
        states.state_order

    from days
    cross join wallets
    cross join states

),

final as (

    select
        {{ composite_key(['grid.calendar_date', 'grid.wallet_id', 'grid.state']) }} as day_wallet_state_id,
        grid.calendar_date,
        grid.wallet_id,
        grid.state,
        grid.phase,
        grid.state_order,
        coalesce(at_day_end.tokens_at_day_end, 0) as tokens_at_day_end,
        coalesce(entered.tokens_entered, 0) as tokens_entered

    from grid
    left join at_day_end
        on grid.calendar_date = at_day_end.calendar_date
        and grid.wallet_id = at_day_end.wallet_id
        and grid.state = at_day_end.state
    left join entered
        on grid.calendar_date = entered.calendar_date
        and grid.wallet_id = entered.wallet_id
        and grid.state = entered.state

)

select * from final
