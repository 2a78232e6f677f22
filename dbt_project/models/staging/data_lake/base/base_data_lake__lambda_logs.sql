{{ config(materialized='ephemeral') }}
{#- What a base model is for: the docs block base_model (models/staging/_base.md). -#}
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

)

select * from renamed
