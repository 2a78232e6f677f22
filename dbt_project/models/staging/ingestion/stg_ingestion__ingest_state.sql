with

source as (

    select * from {{ source('ingestion', '_ingest_state') }}

),

renamed as (

    select
        key as state_key,
        value as state_value,
        {{ to_utc_timestamp('updated_at') }} as updated_at

    from source

)

select * from renamed
