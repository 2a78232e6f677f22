{{ config(materialized='ephemeral') }}
{#- What a base model is for: the docs block base_model (models/staging/_base.md). -#}
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

)

select * from renamed
