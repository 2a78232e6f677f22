{#- Per wallet, network and request day: provisioning requests, decision mix, success and
    yellow-path completion rates, time to activate and failure reasons. -#}
{%- set reasons = var('provisioning_failure_reasons') -%}
with

attempts as (

    select * from {{ ref('int_provisioning_attempts') }}

),

daily as (

    select
        wallet_id,
        network,
        request_date,
        count(*) as requests,
        cast(sum(provision_api_calls) as bigint) as provision_api_calls,
        cast(sum(failed_api_calls) as bigint) as failed_api_calls,
        {{ count_if("decision = 'green'") }} as green_decisions,
        {{ count_if("decision = 'yellow'") }} as yellow_decisions,
        {{ count_if("decision = 'red'") }} as red_decisions,
        {{ count_if("decision is null") }} as undecided_requests,
        {{ count_if("is_provision_success") }} as provision_successes,
        {{ count_if("is_yellow_path_completed") }} as yellow_completions,
        {{ count_if("provisioning_outcome = 'failed'") }} as provision_failures,
        {%- for reason in reasons %}
        {{ count_if("failure_reason_code = '" ~ reason ~ "'") }} as failures_{{ reason }},
        {%- endfor %}
        {{ count_if("provisioning_outcome = 'failed' and (failure_reason_code is null or failure_reason_code not in ('" ~ reasons | join("', '") ~ "'))") }} as failures_other_reason,
        {{ round_to(percentile('seconds_to_activate', 0.5), 3) }} as time_to_activate_p50_seconds,
        {{ round_to(percentile('seconds_to_activate', 0.95), 3) }} as time_to_activate_p95_seconds

    from attempts
    group by wallet_id, network, request_date

),

final as (

    select
        {{ composite_key(['wallet_id', 'network', 'request_date']) }} as wallet_network_day_id,
        wallet_id,
        network,
        request_date,
        requests,
        provision_api_calls,
        failed_api_calls,
        green_decisions,
        yellow_decisions,
        red_decisions,
        undecided_requests,
        {{ safe_ratio('green_decisions', 'requests') }} as green_share,
        {{ safe_ratio('yellow_decisions', 'requests') }} as yellow_share,
        {{ safe_ratio('red_decisions', 'requests') }} as red_share,
        provision_successes,
        {{ safe_ratio('provision_successes', 'requests') }} as provision_success_rate,
        yellow_completions,
        {{ safe_ratio('yellow_completions', 'yellow_decisions') }} as yellow_completion_rate,
        provision_failures,
        {%- for reason in reasons %}
        failures_{{ reason }},
        {%- endfor %}
        failures_other_reason,
        time_to_activate_p50_seconds,
        time_to_activate_p95_seconds

    from daily

)

select * from final
