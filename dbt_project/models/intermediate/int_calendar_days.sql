{#- One row per day from the first to the last day with plausible activity in any source
    (event time, not load time), the spine the daily marts fill with zeros. An implausible
    event time (before the var earliest_event_date, or later than the record's arrival by
    more than the allowed skew: macro is_plausible_event_time) does not stretch it: one wallet
    event dated 1970 would otherwise make the calendar start in 1970 and, capped at 10,000
    days, end decades before the real days. Those records are audit exceptions instead. -#}
with

transitions as (

    select occurred_at as activity_at from {{ ref('int_token_transitions') }}
    where {{ is_plausible_event_time('occurred_at', 'loaded_at') }}

),

wallet_events as (

    select event_time as activity_at from {{ ref('int_wallet_events') }}
    where {{ is_plausible_event_time('event_time', 'loaded_at') }}

),

api_requests as (

    select requested_at as activity_at from {{ ref('int_api_requests') }}
    where {{ is_plausible_event_time('requested_at', 'last_loaded_at') }}

),

activity as (

    select activity_at from transitions
    union all
    select activity_at from wallet_events
    union all
    select activity_at from api_requests

),

bounds as (

    select
        cast(min(activity_at) as date) as first_day,
        cast(max(activity_at) as date) as last_day

    from activity

),

numbers as (

    {{ integer_series(10000) }}

),

days as (

    select
        cast({{ dbt.dateadd('day', 'numbers.n', 'bounds.first_day') }} as date) as calendar_date

    from bounds
    inner join numbers
        on numbers.n <= {{ dbt.datediff('bounds.first_day', 'bounds.last_day', 'day') }}

),

final as (

    select
        calendar_date,
        cast({{ dbt.dateadd('day', 1, 'calendar_date') }} as timestamp) as next_day_start,
        cast(calendar_date as timestamp) as day_start

    from days

)

select * from final
