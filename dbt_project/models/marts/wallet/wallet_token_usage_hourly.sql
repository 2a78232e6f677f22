{#- Per wallet, day and hour of day (UTC): authorisations, transacting tokens and amounts, the
    usage pattern over the day. Hours without usage are present with zeros. -#}
{%- set currencies = var('usage_currencies') -%}
with

days as (

    select * from {{ ref('int_calendar_days') }}

),

wallets as (

    select wallet_id from {{ ref('dim_wallet') }}
    where has_activity

),

hours as (

    {{ integer_series(24) }}

),

authorisations as (

    select * from {{ ref('int_wallet_events') }}
    where event_type = 'token_used'

),

usage_hourly as (

    select
        wallet_id,
        cast(event_time as date) as usage_date,
        cast(extract(hour from event_time) as integer) as hour_of_day,
        count(*) as authorisations,
        count(distinct token_ref) as transacting_tokens,
        {%- for currency in currencies %}
        {{ round_to("sum(case when currency = '" ~ currency ~ "' then amount else 0 end)", 2) }} as authorised_amount_{{ currency | lower }}{{ ',' if not loop.last }}
        {%- endfor %}

    from authorisations
    group by wallet_id, cast(event_time as date), cast(extract(hour from event_time) as integer)

),

grid as (

    select
        wallets.wallet_id,
        days.calendar_date as usage_date,
        cast(hours.n as integer) as hour_of_day

    from wallets
    cross join days
    cross join hours

),

final as (

    select
        {{ composite_key(['grid.wallet_id', 'grid.usage_date', 'grid.hour_of_day']) }} as wallet_day_hour_id,
        grid.wallet_id,
        grid.usage_date,
        grid.hour_of_day,
        coalesce(usage_hourly.authorisations, 0) as authorisations,
        coalesce(usage_hourly.transacting_tokens, 0) as transacting_tokens,
        {%- for currency in currencies %}
        coalesce(usage_hourly.authorised_amount_{{ currency | lower }}, 0) as authorised_amount_{{ currency | lower }},
        {%- endfor %}
        {{ safe_ratio('coalesce(usage_hourly.authorisations, 0)', 'sum(coalesce(usage_hourly.authorisations, 0)) over (partition by grid.wallet_id, grid.usage_date)') }} as share_of_day_authorisations

    from grid
    left join usage_hourly
        on grid.wallet_id = usage_hourly.wallet_id
        and grid.usage_date = usage_hourly.usage_date
        and grid.hour_of_day = usage_hourly.hour_of_day

)

select * from final
