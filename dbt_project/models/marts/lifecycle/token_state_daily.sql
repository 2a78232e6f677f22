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

spans as {{ not_materialized() }} (

    select * from {{ ref('int_token_lifecycle_spans') }}

),

day_end_changes as (

    -- The day-end count as a running sum of changes, never a join of every span to every
    -- day it covers (billions of rows for long-lived tokens): a span counts at the end of day
    -- d when it entered before the next midnight and had not exited by then, so it adds one
    -- on the day it entered and takes one away on the day it exited (a span left at exactly
    -- midnight still counts for the day before). Days before the calendar's first fold into it.
    select
        greatest(cast(entered_at as date), (select min(calendar_date) from days)) as calendar_date,
        wallet_id,
        state,
        1 as change

    from spans
    union all
    select
        greatest(cast(exited_at as date), (select min(calendar_date) from days)) as calendar_date,
        wallet_id,
        state,
        -1 as change

    from spans
    where exited_at is not null

),

changes_per_day as (

    select calendar_date, wallet_id, state, sum(change) as change
    from day_end_changes
    group by calendar_date, wallet_id, state

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
        cast(sum(coalesce(changes_per_day.change, 0)) over (
            partition by grid.wallet_id, grid.state
            order by grid.calendar_date
            rows between unbounded preceding and current row
        ) as bigint) as tokens_at_day_end,
        coalesce(entered.tokens_entered, 0) as tokens_entered

    from grid
    left join changes_per_day
        on grid.calendar_date = changes_per_day.calendar_date
        and grid.wallet_id = changes_per_day.wallet_id
        and grid.state = changes_per_day.state
    left join entered
        on grid.calendar_date = entered.calendar_date
        and grid.wallet_id = entered.wallet_id
        and grid.state = entered.state

)

select * from final
