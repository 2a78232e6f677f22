{#- A token is in one state at a time: each state visit ends where the next one starts, and
    only its last visit is open. -#}
with

spans as (

    select * from {{ ref('int_token_lifecycle_spans') }}

),

checked as (

    select
        span_id,
        token_ref,
        exited_at,
        is_current,
        lead(entered_at) over (partition by token_ref order by token_version, span_id) as next_entered_at,
        count(*) over (partition by token_ref) as visits,
        row_number() over (partition by token_ref order by token_version, span_id) as visit_number

    from spans

)

select * from checked
where (is_current and visit_number <> visits)
    or (not is_current and exited_at <> next_entered_at)
