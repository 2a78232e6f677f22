{#- One row per checkpoint (a checkpoint copied to the warehouse twice keeps its first load). -#}
with

source as (

    select * from {{ source('audit', 'chain_checkpoint_log') }}

),

renamed as (

    select
        cast(seq as bigint) as checkpoint_seq,
        {{ to_utc_timestamp('taken_at') }} as taken_at,
        nullif(prev_digest, '') as prev_digest,
        digest,
        key_id,
        seal,
        cast(xact_from as bigint) as xact_from,
        cast(xact_to as bigint) as xact_to,
        cast(row_count as bigint) as checkpointed_rows,
        s3_key,
        {{ to_utc_timestamp('_loaded_at') }} as loaded_at

    from source

),

deduplicated as (

    select
        *,
        row_number() over (
            partition by checkpoint_seq order by loaded_at, digest
        ) as checkpoint_copy_number

    from renamed

),

final as (

    select
        checkpoint_seq,
        taken_at,
        prev_digest,
        digest,
        key_id,
        seal,
        xact_from,
        xact_to,
        checkpointed_rows,
        s3_key,
        loaded_at

    from deduplicated
    where checkpoint_copy_number = 1

)

select * from final
