{{ config(materialized='incremental', unique_key='token_ref', cluster_by=['token_ref']) }}
{#- One row per token and state visit: entered with a transition, left with the next one.
    Incremental: a run recomputes every span of the tokens with transitions loaded since the
    last run (a new transition closes the token's open span) and replaces the token's rows
    whole (delete+insert by token_ref), so a span that no longer exists upstream goes too. A token's rows are ordered by
    version, then transition_id: a forked chain reads the same on every run. -#}
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

spans as (

    select
        {{ composite_key(['token_ref', 'token_version']) }} as span_id,
        token_ref,
        wallet_id,
        network,
        token_type,
        token_version,
        to_state as state,
        actor as entered_by,
        reason_code as entered_reason_code,
        occurred_at as entered_at,
        lead(occurred_at) over (
            partition by token_ref order by token_version, transition_id
        ) as exited_at,
        lead(to_state) over (
            partition by token_ref order by token_version, transition_id
        ) as next_state,
        lead(actor) over (
            partition by token_ref order by token_version, transition_id
        ) as exited_by,
        row_number() over (
            partition by token_ref, to_state order by token_version, transition_id
        ) as state_visit_number

    from transitions

),

final as (

    select
        span_id,
        token_ref,
        wallet_id,
        network,
        token_type,
        token_version,
        state,
        state_visit_number,
        entered_at,
        entered_by,
        entered_reason_code,
        exited_at,
        exited_by,
        next_state,
        {{ round_to(seconds_between('entered_at', 'exited_at'), 3) }} as duration_seconds,
        exited_at is null as is_current,
        {{ transformed_at() }} as transformed_at

    from spans

)

select * from final
