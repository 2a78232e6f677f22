{{ config(materialized='ephemeral') }}
{#- What a base model is for: the docs block base_model (models/staging/_base.md). -#}
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
