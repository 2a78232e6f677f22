with

source as (

    {{ with_load_seq(source('wallet_stream', 'wallet_events'), 'wallet_events') }}

),

renamed as (

    select
        event_id,
        event_type,
        {{ to_utc_timestamp('event_time') }} as event_time,
        wallet_id,
        token_ref,
        cast(schema_version as integer) as schema_version,
        request_id,
        network,
        token_type,
        cast(latency_ms as {{ type_double() }}) as latency_ms,
        cast(http_status as integer) as http_status,
        decision,
        error_code,
        idv_method,
        outcome as idv_outcome,
        cast(amount as {{ type_double() }}) as amount,
        currency,
        merchant_category,
        new_state,
        reason_code,
        actor,
        {{ json_to_text('extra') }} as extra_json,
        shard_id,
        sequence_number,
        {{ to_utc_timestamp('arrived_at') }} as arrived_at,
        {{ to_utc_timestamp('_loaded_at') }} as loaded_at,
        _load_seq as load_seq,
        _source_location as source_location

    from source

),

deduplicated as (

    select
        *,
        row_number() over (
            partition by event_id order by loaded_at, arrived_at, source_location
        ) as event_copy_number

    from renamed

),

final as (

    select
        event_id,
        event_type,
        event_time,
        wallet_id,
        token_ref,
        schema_version,
        request_id,
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
        actor,
        extra_json,
        shard_id,
        sequence_number,
        arrived_at,
        loaded_at,
        load_seq,
        source_location

    from deduplicated
    where event_copy_number = 1

)

select * from final
