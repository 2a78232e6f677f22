{{ config(materialized='incremental', unique_key='request_id', cluster_by=['request_date']) }}
{#- One row per API Gateway request, with the Lambda invocation that served it. Incremental: a
    run (re)computes the requests whose gateway record is new, or whose Lambda record arrived
    since (the two come in different S3 objects, in either order): the loads committed since
    the last run, by load_seq (see int_token_transitions). -#}
with

{% if is_incremental() -%}
touched_requests as (

    -- from the raw tables, by the new loads' stamps (a filter on the deduplicated staging
    -- views would stop at their windows and scan and sort both logs on every run)
    {{ keys_of_new_loads('data_lake', 'apigw_logs', 'request_id',
                         incremental_watermark('last_load_seq'), 'request_time') }}
    union
    {{ keys_of_new_loads('data_lake', 'lambda_logs', 'request_id',
                         incremental_watermark('last_load_seq')) }}

),

gateway_copies as (

    select * from {{ ref('base_data_lake__apigw_logs') }}
    where request_id in (select request_id from touched_requests)

),

lambda_copies as (

    select * from {{ ref('base_data_lake__lambda_logs') }}
    where request_id in (select request_id from touched_requests)

),

-- every copy of a touched request, deduplicated by the staging models' rule
gateway as (

    {{ first_copy('gateway_copies', 'request_id', 'loaded_at, source_location') }}

),

lambdas as (

    {{ first_copy('lambda_copies', 'request_id', 'loaded_at, source_location') }}

),

{%- else %}
gateway as (

    -- depends_on: {{ ref('base_data_lake__apigw_logs') }} (what an increment reads)
    -- depends_on: {{ ref('base_data_lake__lambda_logs') }} (what an increment reads)
    select * from {{ ref('stg_data_lake__apigw_logs') }}

),

lambdas as (

    select * from {{ ref('stg_data_lake__lambda_logs') }}

),

{%- endif %}
joined as (

    select
        gateway.request_id,
        gateway.requested_at,
        cast(gateway.requested_at as date) as request_date,
        gateway.wallet_id,
        gateway.route,
        {{ dbt.split_part('gateway.route', "' '", 1) }} as http_method,
        {{ dbt.split_part('gateway.route', "' '", 2) }} as route_path,
        gateway.http_status,
        case
            when gateway.http_status >= 500 then '5xx'
            when gateway.http_status >= 400 then '4xx'
            when gateway.http_status >= 300 then '3xx'
            else '2xx'
        end as status_class,
        gateway.http_status between 400 and 499 as is_client_error,
        gateway.http_status >= 500 as is_server_error,
        gateway.latency_ms,
        gateway.integration_latency_ms,
        lambdas.request_id is not null as has_lambda_record,
        lambdas.function_name as lambda_function_name,
        lambdas.duration_ms as lambda_duration_ms,
        lambdas.billed_duration_ms as lambda_billed_duration_ms,
        lambdas.memory_size_mb as lambda_memory_size_mb,
        lambdas.max_memory_used_mb as lambda_max_memory_used_mb,
        lambdas.error_message as lambda_error_message,
        gateway.source_location,
        case
            when lambdas.loaded_at > gateway.loaded_at then lambdas.loaded_at
            else gateway.loaded_at
        end as last_loaded_at,
        case
            when lambdas.load_seq > gateway.load_seq then lambdas.load_seq
            else gateway.load_seq
        end as last_load_seq,
        {{ transformed_at() }} as transformed_at

    from gateway
    left join lambdas
        on gateway.request_id = lambdas.request_id

)

select * from joined
