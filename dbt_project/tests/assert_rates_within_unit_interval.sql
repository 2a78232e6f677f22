{#- Every rate and share in the marts lies in [0, 1] (or is null where undefined). Every column
    the marts' yml declares with bounds [0, 1] (config: meta: kpi:) must be listed here:
    tests/dbt/test_kpi_bounds.py checks it. -#}
{%- set rates = {
    'wallet_provisioning_daily': ['green_share', 'yellow_share', 'red_share',
                                  'provision_success_rate', 'yellow_completion_rate'],
    'wallet_service_daily': ['client_error_rate', 'server_error_rate', 'error_rate'],
    'wallet_token_usage_hourly': ['share_of_day_authorisations'],
    'wallet_comparison': ['provision_success_rate', 'yellow_share', 'red_share',
                          'yellow_completion_rate', 'api_error_rate'],
    'provisioning_funnel': ['conversion_to_next', 'share_of_requests'],
} -%}

{% for model, columns in rates.items() %}
{%- for column in columns %}
select
    '{{ model }}' as model_name,
    '{{ column }}' as column_name,
    cast({{ column }} as {{ type_double() }}) as rate
from {{ ref(model) }}
where {{ column }} < 0 or {{ column }} > 1
{% if not loop.last %}union all{% endif %}
{%- endfor %}
{% if not loop.last %}union all{% endif %}
{% endfor %}
