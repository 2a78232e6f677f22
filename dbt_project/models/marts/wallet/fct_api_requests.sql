{{ config(materialized='view') }}
{#- One row per API Gateway request with its Lambda run: the request-level fact the semantic
    layer's request, error and latency metrics aggregate (any grain, any wallet group). -#}
select
    request_id,
    wallet_id,
    requested_at,
    request_date,
    http_method,
    route_path,
    http_status,
    status_class,
    is_client_error,
    is_server_error,
    latency_ms,
    integration_latency_ms,
    has_lambda_record,
    lambda_function_name,
    lambda_duration_ms,
    lambda_billed_duration_ms,
    lambda_error_message is not null as is_lambda_error

from {{ ref('int_api_requests') }}
