{#- The provisioning funnel's steps (var provisioning_funnel_states) start at the lifecycle's
    initial state and each step can legally move to the next one. -#}
{%- set steps = var('provisioning_funnel_states') -%}

with

steps as (

    {% for state in steps -%}
    select
        {{ loop.index }} as step_number,
        '{{ state }}' as state,
        {% if not loop.last %}'{{ steps[loop.index] }}'{% else %}cast(null as {{ dbt.type_string() }}){% endif %} as next_state
    {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

states as (

    select * from {{ ref('lifecycle_states') }}

),

legal as (

    select * from {{ ref('lifecycle_transitions') }}

)

select steps.*
from steps
left join states
    on steps.state = states.state
left join legal
    on steps.state = legal.from_state
    and steps.next_state = legal.to_state
where states.state is null
    or (steps.step_number = 1 and not states.is_initial)
    or (steps.next_state is not null and legal.transition_key is null)
