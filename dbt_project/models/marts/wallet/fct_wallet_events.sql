{{ config(materialized='view') }}
{#- One row per wallet event (provisioning responses, authorisations, state notices) without
    its raw payload: the event-level fact of the usage and wallet-latency metrics. -#}
select
    event_id,
    event_type,
    event_time,
    cast(event_time as date) as event_date,
    wallet_id,
    token_ref,
    network,
    token_type,
    latency_ms,
    http_status,
    decision,
    error_code,
    idv_method,
    idv_outcome,
    amount,
    currency,
    merchant_category,
    new_state,
    reason_code,
    actor

from {{ ref('int_wallet_events') }}
