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

),

deduplicated as (

    select
        *,
        row_number() over (
            partition by request_id order by loaded_at, source_location
        ) as request_copy_number

    from renamed

),

final as (

    select
        request_id,
        requested_at,
        route,
        http_status,
        latency_ms,
        integration_latency_ms,
        wallet_id,
        extra_json,
        loaded_at,
        load_seq,
        source_location

    from deduplicated
    where request_copy_number = 1

)

select * from final
