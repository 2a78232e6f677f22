{#- Per source table, day quarantined and kind of problem: records ingestion refused. Nothing
    is dropped silently: these counts reconcile with what the sources sent. -#}
with

quarantine as (

    select * from {{ ref('stg_ingestion__quarantine') }}

),

classified as (

    select
        source_table,
        cast(loaded_at as date) as quarantined_date,
        case
            when reason like 'not valid JSON%' or reason like 'not a JSON object%' then 'broken_json'
            when reason like 'missing required field%' then 'missing_field'
            when reason like 'field %' then 'wrong_type'
            when reason like 'object is not gzip%' or reason like '%gzip%' then 'corrupt_object'
            else 'other'
        end as problem_kind,
        source_location

    from quarantine

),

final as (

    select
        {{ composite_key(['source_table', 'quarantined_date', 'problem_kind']) }} as source_day_problem_id,
        source_table,
        quarantined_date,
        problem_kind,
        count(*) as quarantined_records,
        min(source_location) as example_location

    from classified
    group by source_table, quarantined_date, problem_kind

)

select * from final
