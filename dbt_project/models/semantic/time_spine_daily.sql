{#- MetricFlow's day spine: one row per day of the configured range (vars time_spine_start and
    time_spine_end), the days a metric can be joined to when it has no row that day. -#}
with days as (

    {{ dbt.date_spine('day', "cast('" ~ var('time_spine_start') ~ "' as date)",
                      "cast('" ~ var('time_spine_end') ~ "' as date)") }}

)

select cast(date_day as date) as date_day from days
