{#- Per day and exception type: findings, tokens affected. Every type has a row on every day of
    the calendar and on every day with a finding, with zeros. -#}
with

exceptions as (

    select * from {{ ref('audit_exceptions') }}

),

exception_types as (

    select * from {{ ref('audit_exception_types') }}

),

days as (

    select calendar_date from {{ ref('int_calendar_days') }}
    union
    select observed_date as calendar_date from exceptions

),

daily as (

    select
        observed_date,
        exception_type,
        count(*) as findings,
        count(distinct token_ref) as tokens_affected

    from exceptions
    group by observed_date, exception_type

),

grid as (

    select
        days.calendar_date,
        exception_types.exception_type,
        exception_types.severity

    from days
    cross join exception_types

),

final as (

    select
        {{ composite_key(['grid.calendar_date', 'grid.exception_type']) }} as day_exception_type_id,
        grid.calendar_date,
        grid.exception_type,
        grid.severity,
        coalesce(daily.findings, 0) as findings,
        coalesce(daily.tokens_affected, 0) as tokens_affected

    from grid
    left join daily
        on grid.calendar_date = daily.observed_date
        and grid.exception_type = daily.exception_type

)

select * from final
