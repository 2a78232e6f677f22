{{ config(materialized='ephemeral') }}
{#- Every raw row, typed and renamed, copies included (no dedupe): read by the staging
    model (the first copy per request_id) and by the incremental model downstream, which filters
    it to the loads it has not read before deduplicating (an ephemeral model: a CTE in
    both, so a filter on it reaches the raw table instead of stopping at a window). -#}
with

source as (

    {{ with_load_seq(source('data_lake', 'apigw_logs'), 'apigw_logs') }}

),

renamed as (

    select
        request_id,
        {{ to_utc_timestamp('request_time') }} as requested_at,
        route,
        cast(status as integer) as http_status,
        cast(latency_ms as {{ type_double() }}) as latency_ms,
        cast(integration_latency_ms as {{ type_double() }}) as integration_latency_ms,
        wallet_id,
        {{ json_to_text('extra') }} as extra_json,
        {{ to_utc_timestamp('_loaded_at') }} as loaded_at,
        _load_seq as load_seq,
        _source_location as source_location

    from source

)

select * from renamed
