{#- One row per wallet with activity, over the whole period: the headline figures side by side
    (provisioning, service quality, usage, lifecycle), with ranks for the key ones. -#}
with

wallets as (

    select * from {{ ref('dim_wallet') }}
    where has_activity

),

attempts as (

    select * from {{ ref('int_provisioning_attempts') }}

),

api_requests as (

    select * from {{ ref('int_api_requests') }}

),

usage_daily as (

    select * from {{ ref('wallet_token_usage_daily') }}

),

transitions as (

    select * from {{ ref('int_token_transitions') }}

),

provisioning as (

    select
        wallet_id,
        count(*) as requests,
        {{ count_if('is_provision_success') }} as provision_successes,
        {{ count_if("decision = 'yellow'") }} as yellow_decisions,
        {{ count_if("decision = 'red'") }} as red_decisions,
        {{ count_if('is_yellow_path_completed') }} as yellow_completions,
        {{ round_to(percentile('seconds_to_activate', 0.5), 3) }} as time_to_activate_p50_seconds,
        {{ round_to(percentile('seconds_to_activate', 0.95), 3) }} as time_to_activate_p95_seconds

    from attempts
    group by wallet_id

),

service as (

    select
        wallet_id,
        count(*) as api_requests,
        {{ count_if('is_client_error or is_server_error') }} as api_errors,
        {{ round_to(latency_percentile('latency_ms', 0.95), 3) }} as gateway_latency_p95_ms

    from api_requests
    group by wallet_id

),

usage as (

    select
        wallet_id,
        cast(sum(authorisations) as bigint) as authorisations,
        cast(sum(active_tokens) as bigint) as active_token_days

    from usage_daily
    group by wallet_id

),

lifecycle as (

    select
        wallet_id,
        count(distinct case when to_state = 'TokenSuspended' then token_ref end) as tokens_suspended,
        count(distinct case when to_state = 'TokenDeactivated' then token_ref end) as tokens_deactivated,
        count(distinct case when to_state = 'TokenExpired' then token_ref end) as tokens_expired

    from transitions
    group by wallet_id

),

joined as (

    select
        wallets.wallet_id,
        wallets.display_name,
        wallets.wallet_kind,
        coalesce(provisioning.requests, 0) as requests,
        coalesce(provisioning.provision_successes, 0) as provision_successes,
        {{ safe_ratio('provisioning.provision_successes', 'provisioning.requests') }} as provision_success_rate,
        {{ safe_ratio('provisioning.yellow_decisions', 'provisioning.requests') }} as yellow_share,
        {{ safe_ratio('provisioning.red_decisions', 'provisioning.requests') }} as red_share,
        {{ safe_ratio('provisioning.yellow_completions', 'provisioning.yellow_decisions') }} as yellow_completion_rate,
        provisioning.time_to_activate_p50_seconds,
        provisioning.time_to_activate_p95_seconds,
        coalesce(service.api_requests, 0) as api_requests,
        {{ safe_ratio('service.api_errors', 'service.api_requests') }} as api_error_rate,
        service.gateway_latency_p95_ms,
        coalesce(usage.authorisations, 0) as authorisations,
        coalesce(usage.active_token_days, 0) as active_token_days,
        {{ safe_ratio('usage.authorisations', 'usage.active_token_days') }} as authorisations_per_active_token_day,
        coalesce(lifecycle.tokens_suspended, 0) as tokens_suspended,
        coalesce(lifecycle.tokens_deactivated, 0) as tokens_deactivated,
        coalesce(lifecycle.tokens_expired, 0) as tokens_expired

    from wallets
    left join provisioning
        on wallets.wallet_id = provisioning.wallet_id
    left join service
        on wallets.wallet_id = service.wallet_id
    left join usage
        on wallets.wallet_id = usage.wallet_id
    left join lifecycle
        on wallets.wallet_id = lifecycle.wallet_id

),

final as (

    select
        *,
        rank() over (order by provision_success_rate desc nulls last, wallet_id) as success_rate_rank,
        rank() over (order by gateway_latency_p95_ms asc nulls last, wallet_id) as latency_rank,
        rank() over (order by requests desc, wallet_id) as volume_rank

    from joined

)

select * from final
