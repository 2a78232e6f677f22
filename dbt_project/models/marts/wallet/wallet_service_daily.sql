{#- Per wallet and day: API Gateway traffic, error rates and latency, provisioning latency as
    the wallet saw it (wallet events), and Lambda run time. -#}
with

api_requests as (

    select * from {{ ref('int_api_requests') }}

),

wallet_events as (

    select * from {{ ref('int_wallet_events') }}

),

gateway_daily as (

    select
        wallet_id,
        request_date as activity_date,
        count(*) as api_requests,
        {{ count_if('is_client_error') }} as client_errors,
        {{ count_if('is_server_error') }} as server_errors,
        {{ round_to(latency_percentile('latency_ms', 0.5), 3) }} as gateway_latency_p50_ms,
        {{ round_to(latency_percentile('latency_ms', 0.95), 3) }} as gateway_latency_p95_ms,
        {{ round_to(latency_percentile('latency_ms', 0.99), 3) }} as gateway_latency_p99_ms,
        {{ count_if('has_lambda_record') }} as lambda_invocations,
        {{ count_if('lambda_error_message is not null') }} as lambda_errors,
        {{ round_to(latency_percentile('lambda_duration_ms', 0.5), 3) }} as lambda_duration_p50_ms,
        {{ round_to(latency_percentile('lambda_duration_ms', 0.95), 3) }} as lambda_duration_p95_ms,
        {{ round_to(latency_percentile('lambda_duration_ms', 0.99), 3) }} as lambda_duration_p99_ms,
        {{ round_to('sum(lambda_billed_duration_ms)', 3) }} as lambda_billed_duration_ms

    from api_requests
    group by wallet_id, request_date

),

provisioning_daily as (

    select
        wallet_id,
        cast(event_time as date) as activity_date,
        count(*) as provisioning_responses,
        {{ count_if('http_status >= 400') }} as provisioning_error_responses,
        {{ round_to(latency_percentile('latency_ms', 0.5), 3) }} as provisioning_latency_p50_ms,
        {{ round_to(latency_percentile('latency_ms', 0.95), 3) }} as provisioning_latency_p95_ms,
        {{ round_to(latency_percentile('latency_ms', 0.99), 3) }} as provisioning_latency_p99_ms

    from wallet_events
    where event_type = 'provision_response'
    group by wallet_id, cast(event_time as date)

),

wallet_days as (

    select wallet_id, activity_date from gateway_daily
    union
    select wallet_id, activity_date from provisioning_daily

),

final as (

    select
        {{ composite_key(['wallet_days.wallet_id', 'wallet_days.activity_date']) }} as wallet_day_id,
        wallet_days.wallet_id,
        wallet_days.activity_date,
        coalesce(gateway_daily.api_requests, 0) as api_requests,
        coalesce(gateway_daily.client_errors, 0) as client_errors,
        coalesce(gateway_daily.server_errors, 0) as server_errors,
        {{ safe_ratio('gateway_daily.client_errors', 'gateway_daily.api_requests') }} as client_error_rate,
        {{ safe_ratio('gateway_daily.server_errors', 'gateway_daily.api_requests') }} as server_error_rate,
        {{ safe_ratio('gateway_daily.client_errors + gateway_daily.server_errors', 'gateway_daily.api_requests') }} as error_rate,
        gateway_daily.gateway_latency_p50_ms,
        gateway_daily.gateway_latency_p95_ms,
        gateway_daily.gateway_latency_p99_ms,
        coalesce(provisioning_daily.provisioning_responses, 0) as provisioning_responses,
        coalesce(provisioning_daily.provisioning_error_responses, 0) as provisioning_error_responses,
        provisioning_daily.provisioning_latency_p50_ms,
        provisioning_daily.provisioning_latency_p95_ms,
        provisioning_daily.provisioning_latency_p99_ms,
        coalesce(gateway_daily.lambda_invocations, 0) as lambda_invocations,
        coalesce(gateway_daily.lambda_errors, 0) as lambda_errors,
        gateway_daily.lambda_duration_p50_ms,
        gateway_daily.lambda_duration_p95_ms,
        gateway_daily.lambda_duration_p99_ms,
        gateway_daily.lambda_billed_duration_ms

    from wallet_days
    left join gateway_daily
        on wallet_days.wallet_id = gateway_daily.wallet_id
        and wallet_days.activity_date = gateway_daily.activity_date
    left join provisioning_daily
        on wallet_days.wallet_id = provisioning_daily.wallet_id
        and wallet_days.activity_date = provisioning_daily.activity_date

)

select * from final
