{#- Every non-null value of the column is one of the lifecycle vocabulary `enum_name` in the
    seed lifecycle_enums (generated from state_service/lifecycle.py). -#}
{% test accepted_enum_value(model, column_name, enum_name) %}

with

enum_values as (

    select enum_value from {{ ref('lifecycle_enums') }}
    where enum_name = '{{ enum_name }}'

)

select
    {{ column_name }} as unexpected_value,
    count(*) as row_count

from {{ model }}
where {{ column_name }} is not null
    and {{ column_name }} not in (select enum_value from enum_values)
group by {{ column_name }}

{% endtest %}
