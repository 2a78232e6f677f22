with

source as (

    select * from {{ source('ingestion', 'quarantine') }}

),

renamed as (

    select
        source as source_table,
        location as source_location,
        raw_text,
        reason,
        {{ to_utc_timestamp('_loaded_at') }} as loaded_at

    from source

),

deduplicated as (

    -- a location is one record: a re-read after a crash may quarantine it again
    select
        *,
        row_number() over (
            partition by source_location order by loaded_at
        ) as record_copy_number

    from renamed

),

final as (

    select
        source_table,
        source_location,
        raw_text,
        reason,
        loaded_at

    from deduplicated
    where record_copy_number = 1

)

select * from final
