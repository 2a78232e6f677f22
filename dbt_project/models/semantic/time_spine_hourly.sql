{#- MetricFlow's hour spine: one row per hour of the configured range (vars time_spine_start
    and time_spine_end), for metrics queried at metric_time__hour. -#}
with hours as (

    {{ dbt.date_spine('hour', "cast('" ~ var('time_spine_start') ~ "' as timestamp)",
                      "cast('" ~ var('time_spine_end') ~ "' as timestamp)") }}

)

select cast(date_hour as timestamp) as date_hour from hours
