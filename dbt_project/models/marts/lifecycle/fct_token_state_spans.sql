{{ config(materialized='view') }}
{#- One row per visit of a token to a state (entered, exited, how long): the fact the time in
    state metrics aggregate. An open visit (the token's current state) has no exit yet. -#}
select
    span_id,
    token_ref,
    wallet_id,
    network,
    token_type,
    state,
    state_visit_number,
    entered_at,
    cast(entered_at as date) as entered_date,
    entered_by,
    entered_reason_code,
    exited_at,
    exited_by,
    next_state,
    duration_seconds,
    is_current

from {{ ref('int_token_lifecycle_spans') }}
