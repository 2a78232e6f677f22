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

active_daily as (

    select
        active_spans.wallet_id,
        days.calendar_date,
        count(distinct active_spans.token_ref) as active_tokens

    from active_spans
    inner join days
        on active_spans.entered_at < days.next_day_start
        and coalesce(active_spans.exited_at, {{ open_ended() }}) > days.day_start
    group by active_spans.wallet_id, days.calendar_date

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
