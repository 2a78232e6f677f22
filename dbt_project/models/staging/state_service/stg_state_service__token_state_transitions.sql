with

source as (

    {{ with_load_seq(source('state_service', 'token_state_transitions'), 'token_state_transitions') }}

),

renamed as (

    select
        cast(transition_id as bigint) as transition_id,
        token_ref,
        cast(version as integer) as token_version,
        event_id,
        from_state,
        to_state,
        actor,
        reason_code,
        decision,
        idv_method,
        wallet_id,
        network,
        token_type,
        {{ to_utc_timestamp('occurred_at') }} as occurred_at,
        {{ to_utc_timestamp('recorded_at') }} as recorded_at,
        cast(xact_id as bigint) as xact_id,
        prev_hash,
        row_hash,
        {{ to_utc_timestamp('_loaded_at') }} as loaded_at,
        _load_seq as load_seq,
        _source_location as source_location

    from source

),

deduplicated as (

    select
        *,
        row_number() over (
            partition by event_id order by loaded_at, transition_id
        ) as event_copy_number

    from renamed

),

final as (

    select
        transition_id,
        token_ref,
        token_version,
        event_id,
        from_state,
        to_state,
        actor,
        reason_code,
        decision,
        idv_method,
        wallet_id,
        network,
        token_type,
        occurred_at,
        recorded_at,
        xact_id,
        prev_hash,
        row_hash,
        loaded_at,
        load_seq,
        source_location

    from deduplicated
    where event_copy_number = 1

)

select * from final
