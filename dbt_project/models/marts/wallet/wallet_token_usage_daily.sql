{#- Per wallet and day: tokens active at any time of the day, tokens that transacted,
    authorisations and amounts (one column per configured currency). -#}
{%- set currencies = var('usage_currencies') -%}
with

days as (

    select * from {{ ref('int_calendar_days') }}

),

wallets as (

    select wallet_id from {{ ref('dim_wallet') }}
    where has_activity

),

active_spans as (

    select * from {{ ref('int_token_lifecycle_spans') }}
    where state = 'TokenActive'

),

authorisations as (

    select * from {{ ref('int_wallet_events') }}
    where event_type = 'token_used'

),

active_day_ranges as (

    -- The days each active span touches, within the calendar: from the day it entered to the
    -- last day whose start it outlived (a span left at exactly midnight ends the day before).
    -- Counting from ranges, never joining every span to every day it covers (billions of
    -- rows for long-lived tokens).
    select
        wallet_id,
        token_ref,
        greatest(cast(entered_at as date), (select min(calendar_date) from days)) as first_day,
        case
            when exited_at is null then (select max(calendar_date) from days)
            when exited_at = cast(cast(exited_at as date) as timestamp)
                then least(cast({{ dbt.dateadd('day', -1, 'cast(exited_at as date)') }} as date),
                           (select max(calendar_date) from days))
            else least(cast(exited_at as date), (select max(calendar_date) from days))
        end as last_day

    from active_spans

),

active_ranges_ordered as (

    -- a token active twice in one day counts once: overlapping ranges of a token merge
    select
        *,
        max(last_day) over (
            partition by wallet_id, token_ref
            order by first_day, last_day
            rows between unbounded preceding and 1 preceding
        ) as reached_before

    from active_day_ranges
    where first_day <= last_day

),

active_islands as (

    select
        *,
        sum(case when reached_before is null or first_day > reached_before then 1 else 0 end)
            over (
                partition by wallet_id, token_ref
                order by first_day, last_day
                rows between unbounded preceding and current row
            ) as island

    from active_ranges_ordered

),

active_periods as (

    select wallet_id, token_ref, min(first_day) as first_day, max(last_day) as last_day
    from active_islands
    group by wallet_id, token_ref, island

),

active_changes as (

    select wallet_id, calendar_date, sum(change) as change
    from (
        select wallet_id, first_day as calendar_date, 1 as change from active_periods
        union all
        select
            wallet_id,
            cast({{ dbt.dateadd('day', 1, 'last_day') }} as date) as calendar_date,
            -1 as change
        from active_periods
    ) as period_edges
    group by wallet_id, calendar_date

),

usage_daily as (

    select
        wallet_id,
        cast(event_time as date) as calendar_date,
        count(*) as authorisations,
        count(distinct token_ref) as transacting_tokens,
        {%- for currency in currencies %}
        {{ round_to("sum(case when currency = '" ~ currency ~ "' then amount else 0 end)", 2) }} as authorised_amount_{{ currency | lower }},
        {%- endfor %}
        {{ count_if("currency is null or currency not in ('" ~ currencies | join("', '") ~ "')") }} as authorisations_other_currency

    from authorisations
    group by wallet_id, cast(event_time as date)

),

wallet_days as (

    select wallets.wallet_id, days.calendar_date
    from wallets
    cross join days

),

active_daily as (

    select
        wallet_days.wallet_id,
        wallet_days.calendar_date,
        cast(sum(coalesce(active_changes.change, 0)) over (
            partition by wallet_days.wallet_id
            order by wallet_days.calendar_date
            rows between unbounded preceding and current row
        ) as bigint) as active_tokens

    from wallet_days
    left join active_changes
        on wallet_days.wallet_id = active_changes.wallet_id
        and wallet_days.calendar_date = active_changes.calendar_date

),

final as (

    select
        {{ composite_key(['wallet_days.wallet_id', 'wallet_days.calendar_date']) }} as wallet_day_id,
        wallet_days.wallet_id,
        wallet_days.calendar_date as usage_date,
        coalesce(active_daily.active_tokens, 0) as active_tokens,
        coalesce(usage_daily.transacting_tokens, 0) as transacting_tokens,
        coalesce(usage_daily.authorisations, 0) as authorisations,
        {{ safe_ratio('coalesce(usage_daily.authorisations, 0)', 'active_daily.active_tokens') }} as authorisations_per_active_token,
        {%- for currency in currencies %}
        coalesce(usage_daily.authorised_amount_{{ currency | lower }}, 0) as authorised_amount_{{ currency | lower }},
        {%- endfor %}
        coalesce(usage_daily.authorisations_other_currency, 0) as authorisations_other_currency

    from wallet_days
    left join active_daily
        on wallet_days.wallet_id = active_daily.wallet_id
        and wallet_days.calendar_date = active_daily.calendar_date
    left join usage_daily
        on wallet_days.wallet_id = usage_daily.wallet_id
        and wallet_days.calendar_date = usage_daily.calendar_date

)

select * from final
