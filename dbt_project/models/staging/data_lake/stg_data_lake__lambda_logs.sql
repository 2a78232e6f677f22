with

source as (

    {{ with_load_seq(source('data_lake', 'lambda_logs'), 'lambda_logs') }}

),

renamed as (

    select
        request_id,
        {{ to_utc_timestamp('invoked_at') }} as invoked_at,
        function as function_name,
        cast(duration_ms as {{ type_double() }}) as duration_ms,
        cast(billed_duration_ms as {{ type_double() }}) as billed_duration_ms,
        cast(memory_size_mb as integer) as memory_size_mb,
        cast(max_memory_used_mb as integer) as max_memory_used_mb,
        nullif(error, '') as error_message,
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
        invoked_at,
        function_name,
        duration_ms,
        billed_duration_ms,
        memory_size_mb,
        max_memory_used_mb,
        error_message,
        extra_json,
        loaded_at,
        load_seq,
        source_location

    from deduplicated
    where request_copy_number = 1

)

select * from final
