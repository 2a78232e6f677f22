{{ config(materialized='incremental', unique_key='token_ref', cluster_by=['token_ref']) }}
{#- One row per token with transitions: its latest transition (the state it is in now).
    Incremental: a run recomputes the tokens with transitions loaded since the last run. Ties
    (a forked chain: two rows with one version) go to the later transition_id. -#}
with

{% if is_incremental() -%}
touched_tokens as (

    {{ tokens_touched_since_last_run() }}

),

{% endif -%}
transitions as (

    select * from {{ ref('int_token_transitions') }}
    {% if is_incremental() -%}
    where token_ref in (select token_ref from touched_tokens)
    {%- endif %}

),

ranked as (

    select
        *,
        row_number() over (
            partition by token_ref order by token_version desc, transition_id desc
        ) as recency_rank

    from transitions

),

final as (

    select
        token_ref,
        wallet_id,
        network,
        token_type,
        to_state as current_state,
        token_version as current_version,
        occurred_at as state_entered_at,
        recorded_at as state_recorded_at,
        actor as state_changed_by,
        reason_code as state_reason_code,
        {{ transformed_at() }} as transformed_at

    from ranked
    where recency_rank = 1

)

select * from final
