{#- One row per day from the first to the last day with activity in any source (event time,
    not load time), the spine the daily marts fill with zeros. -#}
with

transitions as (

    select occurred_at as activity_at from {{ ref('int_token_transitions') }}

),

wallet_events as (

    select event_time as activity_at from {{ ref('int_wallet_events') }}

),

api_requests as (

    select requested_at as activity_at from {{ ref('int_api_requests') }}

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
