{#- One row per provisioning request: a token's TokenRequested transition, its provisioning
    milestones from the transition log, and the wallet's API calls and ID&V from wallet events
    (a request the wallet retried after 4xx/5xx errors is still one request). Incremental: a
    run recomputes the tokens with transitions or provisioning events loaded since the last. -#}
{{ config(materialized='incremental', unique_key='token_ref', cluster_by=['token_ref']) }}
{%- set provisioning_events = ['provision_request', 'provision_response', 'idv_challenge',
                               'idv_result'] %}
with

{% if is_incremental() -%}
touched_tokens as (

    {{ tokens_touched_since_last_run(include_wallet_events=true,
                                     event_types=provisioning_events) }}

),

{% endif -%}
transitions as {{ not_materialized() }} (

    select * from {{ ref('int_token_transitions') }}
    {% if is_incremental() -%}
    where token_ref in (select token_ref from touched_tokens)
    {%- endif %}

),

wallet_events as (

    select * from {{ ref('int_wallet_events') }}
    where event_type in ('{{ provisioning_events | join("', '") }}')
    {% if is_incremental() -%}
        and token_ref in (select token_ref from touched_tokens)
    {%- endif %}

),

requests as (

    select
        token_ref,
        wallet_id,
        network,
        token_type,
        occurred_at as requested_at,
        actor as requested_by

    from transitions
    where to_state = 'TokenRequested'

),

{#- Each milestone is one row: the first transition into its state by version (the token's
    own order, without ties), and every field of the milestone is read off that row. (Separate
    max()es took the alphabetically last reason code and actor of any ProvisionFailed row,
    not those of the row at provision_failed_at.) -#}
first_visits as (

    select
        *,
        row_number() over (
            partition by token_ref, to_state order by token_version
        ) as visit_number

    from transitions

),

milestones as (

    select
        token_ref,
        max(case when to_state = 'ProvisionInitiated' then occurred_at end) as initiated_at,
        max(case when to_state = 'ProvisionPending' then occurred_at end) as decided_at,
        max(case when to_state = 'ProvisionPending' then decision end) as decision,
        max(case when to_state = 'ProvisionPending' then idv_method end) as idv_method,
        max(case when to_state = 'ProvisionSuccess' then occurred_at end) as provision_succeeded_at,
        max(case when to_state = 'ProvisionFailed' then occurred_at end) as provision_failed_at,
        max(case when to_state = 'ProvisionFailed' then reason_code end) as failure_reason_code,
        max(case when to_state = 'ProvisionFailed' then actor end) as failed_by,
        max(case when to_state = 'WalletActive' then occurred_at end) as wallet_active_at,
        max(case when to_state = 'TokenActive' then occurred_at end) as first_token_active_at

    from first_visits
    where visit_number = 1  -- one row per state: each max() reads that row
    group by token_ref

),

{#- The accepted call is the first provision_response answered 200 (by event time, then
    event_id), and its request_id and latency come from that one event; the ID&V outcome is
    the last idv_result's, with its time. (Separate max()es paired one call's request_id with
    another's latency, and took the alphabetically last outcome.) -#}
ranked_events as (

    select
        *,
        case when event_type = 'provision_response' and http_status = 200 then
            row_number() over (
                partition by token_ref, event_type = 'provision_response' and http_status = 200
                order by event_time, event_id
            )
        end as accepted_rank,
        case when event_type = 'idv_result' then
            row_number() over (
                partition by token_ref, event_type
                order by event_time desc, event_id desc
            )
        end as latest_idv_rank

    from wallet_events

),

api_calls as (

    select
        token_ref,
        {{ count_if("event_type = 'provision_request'") }} as provision_api_calls,
        {{ count_if("event_type = 'provision_response' and http_status >= 400") }} as failed_api_calls,
        {{ count_if("event_type = 'provision_response' and http_status between 400 and 499") }} as client_error_api_calls,
        {{ count_if("event_type = 'provision_response' and http_status >= 500") }} as server_error_api_calls,
        max(case when accepted_rank = 1 then latency_ms end) as accepted_call_latency_ms,
        max(case when accepted_rank = 1 then request_id end) as accepted_request_id,
        min(case when event_type = 'idv_challenge' then event_time end) as idv_challenged_at,
        max(case when latest_idv_rank = 1 then event_time end) as idv_completed_at,
        max(case when latest_idv_rank = 1 then idv_outcome end) as idv_outcome

    from ranked_events
    group by token_ref

),

joined as (

    select
        requests.token_ref,
        requests.wallet_id,
        requests.network,
        requests.token_type,
        requests.requested_at,
        cast(requests.requested_at as date) as request_date,
        requests.requested_by,
        milestones.initiated_at,
        milestones.decided_at,
        milestones.decision,
        milestones.idv_method,
        milestones.provision_succeeded_at,
        milestones.provision_failed_at,
        milestones.failure_reason_code,
        milestones.failed_by,
        milestones.wallet_active_at,
        milestones.first_token_active_at,
        coalesce(api_calls.provision_api_calls, 0) as provision_api_calls,
        coalesce(api_calls.failed_api_calls, 0) as failed_api_calls,
        coalesce(api_calls.client_error_api_calls, 0) as client_error_api_calls,
        coalesce(api_calls.server_error_api_calls, 0) as server_error_api_calls,
        api_calls.accepted_request_id,
        api_calls.accepted_call_latency_ms,
        api_calls.idv_challenged_at,
        api_calls.idv_completed_at,
        api_calls.idv_outcome,
        {{ transformed_at() }} as transformed_at

    from requests
    left join milestones
        on requests.token_ref = milestones.token_ref
    left join api_calls
        on requests.token_ref = api_calls.token_ref

),

final as (

    select
        *,
        case
            when wallet_active_at is not null then 'activated'
            when provision_failed_at is not null then 'failed'
            when provision_succeeded_at is not null then 'approved'
            when decided_at is not null then 'pending_decision_outcome'
            else 'in_progress'
        end as provisioning_outcome,
        {{ round_to(seconds_between('requested_at', 'wallet_active_at'), 3) }} as seconds_to_activate,
        coalesce(
            wallet_active_at is not null
            and {{ seconds_between('requested_at', 'wallet_active_at') }}
                <= {{ var('provision_success_window_days') }} * 86400,
            false
        ) as is_provision_success,
        coalesce(decision = 'yellow', false) as is_yellow_path,
        coalesce(decision = 'yellow' and provision_succeeded_at is not null, false) as is_yellow_path_completed

    from joined

)

select * from final
