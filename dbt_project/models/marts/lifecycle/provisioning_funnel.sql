{#- Per wallet and funnel step (var provisioning_funnel_states): tokens that reached the step,
    tokens that reached the next one, the conversion between them, and the tokens that left the
    step for ProvisionFailed. -#}
{%- set steps = var('provisioning_funnel_states') -%}
with

spans as (

    select * from {{ ref('int_token_lifecycle_spans') }}

),

transitions as (

    select * from {{ ref('int_token_transitions') }}

),

wallets as (

    -- the wallets with activity (dim_wallet's has_activity), from this folder's own
    -- dim_token: the lifecycle marts never read the wallet marts, which read them
    select distinct wallet_id from {{ ref('dim_token') }}

),

steps as (

    {% for state in steps -%}
    select
        {{ loop.index }} as step_number,
        '{{ state }}' as state,
        {% if not loop.last %}'{{ steps[loop.index] }}'{% else %}cast(null as {{ dbt.type_string() }}){% endif %} as next_state
    {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

reached as (

    -- the tokens that reached each state: each token's first visit to it (a count, not a
    -- distinct count over the whole log, which sorts or hashes every transition; a token's
    -- wallet is fixed, so its first visit carries it)
    select
        wallet_id,
        state,
        count(*) as tokens_reached

    from spans
    where state_visit_number = 1
    group by wallet_id, state

),

failed_from as (

    select
        wallet_id,
        from_state as state,
        count(distinct token_ref) as tokens_failed

    from transitions
    where to_state = 'ProvisionFailed'
    group by wallet_id, from_state

),

grid as (

    select
        wallets.wallet_id,
        steps.step_number,
        steps.state,
        steps.next_state

    from wallets
    cross join steps

),

final as (

    select
        {{ composite_key(['grid.wallet_id', 'grid.step_number']) }} as wallet_step_id,
        grid.wallet_id,
        grid.step_number,
        grid.state,
        grid.next_state,
        coalesce(this_step.tokens_reached, 0) as tokens_reached,
        case when grid.next_state is not null then coalesce(next_step.tokens_reached, 0) end as tokens_reached_next,
        case
            when grid.next_state is not null
                then {{ safe_ratio('coalesce(next_step.tokens_reached, 0)', 'this_step.tokens_reached') }}
        end as conversion_to_next,
        coalesce(failed_from.tokens_failed, 0) as tokens_failed_from_step,
        {{ safe_ratio('coalesce(this_step.tokens_reached, 0)', 'first_value(this_step.tokens_reached) over (partition by grid.wallet_id order by grid.step_number)') }} as share_of_requests

    from grid
    left join reached as this_step
        on grid.wallet_id = this_step.wallet_id
        and grid.state = this_step.state
    left join reached as next_step
        on grid.wallet_id = next_step.wallet_id
        and grid.next_state = next_step.state
    left join failed_from
        on grid.wallet_id = failed_from.wallet_id
        and grid.state = failed_from.state

)

select * from final
