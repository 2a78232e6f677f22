with

source as (

    select * from {{ source('ingestion', '_s3_manifest') }}

),

renamed as (

    select
        {{ composite_key(['s3_key', 'etag']) }} as manifest_entry_id,
        s3_key,
        etag,
        cast(size_bytes as bigint) as size_bytes,
        cast(rows_loaded as bigint) as rows_loaded,
        cast(rows_quarantined as bigint) as rows_quarantined,
        duplicate_of as duplicate_of_key,
        {{ to_utc_timestamp('_loaded_at') }} as loaded_at

    from source

),

deduplicated as (

    select
        *,
        row_number() over (
            partition by manifest_entry_id order by loaded_at
        ) as entry_copy_number

    from renamed

),

final as (

    select
        manifest_entry_id,
        s3_key,
        etag,
        size_bytes,
        rows_loaded,
        rows_quarantined,
        duplicate_of_key,
        loaded_at

    from deduplicated
    where entry_copy_number = 1

)

select * from final
