{{ config(materialized='incremental', unique_key='token_ref', cluster_by=['token_ref']) }}
{#- One row per provisioning request (a token's TokenRequested) with its decision, outcome,
    timings and the wallet's API calls. Incremental: a run replaces the requests recomputed
    upstream since the last run. -#}
with

attempts as (

    select * from {{ ref('int_provisioning_attempts') }}
    {% if is_incremental() -%}
    where transformed_at > {{ last_transformed_at() }}
    {%- endif %}

),

final as (

    select
        token_ref,
        wallet_id,
        network,
        token_type,
        request_date,
        requested_at,
        decided_at,
        decision,
        idv_method,
        idv_challenged_at,
        idv_completed_at,
        idv_outcome,
        provision_succeeded_at,
        provision_failed_at,
        failure_reason_code,
        failed_by,
        wallet_active_at,
        first_token_active_at,
        provisioning_outcome,
        is_provision_success,
        is_yellow_path,
        is_yellow_path_completed,
        seconds_to_activate,
        {{ round_to(seconds_between('requested_at', 'decided_at'), 3) }} as seconds_to_decision,
        provision_api_calls,
        failed_api_calls,
        client_error_api_calls,
        server_error_api_calls,
        accepted_request_id,
        accepted_call_latency_ms,
        transformed_at

    from attempts

)

select * from final
