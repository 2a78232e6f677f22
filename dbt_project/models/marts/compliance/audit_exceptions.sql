{#- One row per audit finding, with its type (seed audit_exception_types) and the evidence in
    words. Types: illegal_transition, event_time_after_recorded_at, implausible_event_time
    (before the var earliest_event_date: not on the calendar), token_active_past_expiry,
    resumed_by_different_actor, missing_token_requested, pan_like_value, hash_chain_break (a
    row whose links break the chain), the first thing wrong with each token's chain as
    state_service/verify.py names it (audit_token_chains: edited_row, deleted_row,
    inserted_row, reordered_rows, forked_version, whole_chain_rewrite, token_erased,
    checkpoint_mismatch), and checkpoint_missing (a gap in the checkpoints' sequence, or one
    that does not follow the one before it). -#}
{%- set skew = var('max_clock_skew_seconds') -%}
{%- set earliest = var('earliest_event_date') -%}
with

audited as {{ not_materialized() }} (

    select * from {{ ref('audit_token_transitions') }}

),

wallet_events as {{ not_materialized() }} (

    select * from {{ ref('int_wallet_events') }}

),

pan_like_values as (

    select * from {{ ref('int_pan_like_values') }}

),

exception_types as (

    select * from {{ ref('audit_exception_types') }}

),

token_chains as (

    select * from {{ ref('audit_token_chains') }}

),

checkpoint_log as (

    select * from {{ ref('stg_audit__chain_checkpoint_log') }}

),

illegal_transitions as (

    select
        'illegal_transition' as exception_type,
        token_ref,
        wallet_id,
        token_version,
        occurred_at as observed_at,
        'token_state_transitions' as source_table,
        source_location,
        cast(null as {{ dbt.type_string() }}) as column_name,
        case
            when not is_legal_transition then {{ dbt.concat([
                "'transition '", "coalesce(from_state, '(creation)')", "' -> '", 'to_state',
                "' is not in the lifecycle (version '",
                'cast(token_version as ' ~ dbt.type_string() ~ ')', "')'"]) }}
            else {{ dbt.concat([
                "'from_state '", "coalesce(from_state, '(none)')",
                "' but the previous row left the token in '", "coalesce(previous_to_state, '(none)')",
                "' (version '", 'cast(token_version as ' ~ dbt.type_string() ~ ')', "')'"]) }}
        end as evidence

    from audited
    where not is_legal_transition or not follows_previous_state

),

late_recording as (

    select
        'event_time_after_recorded_at' as exception_type,
        token_ref,
        wallet_id,
        token_version,
        occurred_at as observed_at,
        'token_state_transitions' as source_table,
        source_location,
        cast(null as {{ dbt.type_string() }}) as column_name,
        {{ dbt.concat([
            "'occurred_at is '",
            whole_seconds_text('recorded_at', 'occurred_at'),
            "' s after recorded_at (allowed skew " ~ skew ~ " s)'"]) }} as evidence

    from audited
    where {{ seconds_between('recorded_at', 'occurred_at') }} > {{ skew }}

),

late_arrival as (

    select
        'event_time_after_recorded_at' as exception_type,
        token_ref,
        wallet_id,
        cast(null as integer) as token_version,
        event_time as observed_at,
        'wallet_events' as source_table,
        source_location,
        cast(null as {{ dbt.type_string() }}) as column_name,
        {{ dbt.concat([
            "'event_time is '",
            whole_seconds_text('arrived_at', 'event_time'),
            "' s after the Kinesis arrival (allowed skew " ~ skew ~ " s)'"]) }} as evidence

    from wallet_events
    where {{ seconds_between('arrived_at', 'event_time') }} > {{ skew }}

),

implausible_transition_times as (

    select
        'implausible_event_time' as exception_type,
        token_ref,
        wallet_id,
        token_version,
        occurred_at as observed_at,
        'token_state_transitions' as source_table,
        source_location,
        'occurred_at' as column_name,
        {{ dbt.concat([
            "'occurred_at '", 'cast(occurred_at as ' ~ dbt.type_string() ~ ')',
            "' is before the earliest plausible date " ~ earliest ~ "'"]) }} as evidence

    from audited
    where occurred_at < cast('{{ earliest }}' as timestamp)

),

implausible_event_times as (

    select
        'implausible_event_time' as exception_type,
        token_ref,
        wallet_id,
        cast(null as integer) as token_version,
        event_time as observed_at,
        'wallet_events' as source_table,
        source_location,
        'event_time' as column_name,
        {{ dbt.concat([
            "'event_time '", 'cast(event_time as ' ~ dbt.type_string() ~ ')',
            "' is before the earliest plausible date " ~ earliest ~ "'"]) }} as evidence

    from wallet_events
    where event_time < cast('{{ earliest }}' as timestamp)

),

expiries as (

    select
        token_ref,
        min(occurred_at) as expired_at

    from audited
    where to_state = 'TokenExpired'
    group by token_ref

),

used_after_expiry as (

    select
        'token_active_past_expiry' as exception_type,
        wallet_events.token_ref,
        wallet_events.wallet_id,
        cast(null as integer) as token_version,
        wallet_events.event_time as observed_at,
        'wallet_events' as source_table,
        wallet_events.source_location,
        cast(null as {{ dbt.type_string() }}) as column_name,
        {{ dbt.concat([
            "'authorisation (event '", 'wallet_events.event_id', "') '",
            whole_seconds_text('expiries.expired_at', 'wallet_events.event_time'),
            "' s after the token expired'"]) }} as evidence

    from wallet_events
    inner join expiries
        on wallet_events.token_ref = expiries.token_ref
    where wallet_events.event_type = 'token_used'
        and wallet_events.event_time > expiries.expired_at

),

resumes as (

    -- the suspension is the previous row of the token's chain (by version, then
    -- transition_id: one row even where the chain forks)
    select
        'resumed_by_different_actor' as exception_type,
        token_ref,
        wallet_id,
        token_version,
        occurred_at as observed_at,
        'token_state_transitions' as source_table,
        source_location,
        cast(null as {{ dbt.type_string() }}) as column_name,
        {{ dbt.concat([
            "'suspended by '", "coalesce(previous_actor, '(none)')",
            "' ('", "coalesce(previous_reason_code, 'no reason')", "'), resumed by '",
            "coalesce(actor, '(none)')", "' ('", "coalesce(reason_code, 'no reason')", "')'"]) }} as evidence

    from audited
    where from_state = 'TokenSuspended'
        and to_state = 'TokenActive'
        and previous_to_state = 'TokenSuspended'
        and {{ null_safe_differs('actor', 'previous_actor') }}

),

tokens_seen as (

    select token_ref, wallet_id, occurred_at as seen_at, 'token_state_transitions' as seen_in, source_location
    from audited
    union all
    select token_ref, wallet_id, event_time as seen_at, 'wallet_events' as seen_in, source_location
    from wallet_events

),

requested_tokens as (

    select distinct token_ref from audited
    where to_state = 'TokenRequested'

),

unrequested as (

    select
        tokens_seen.token_ref,
        max(tokens_seen.wallet_id) as wallet_id,
        min(tokens_seen.seen_at) as first_seen_at,
        min(tokens_seen.source_location) as source_location,
        {{ count_if("tokens_seen.seen_in = 'token_state_transitions'") }} as transition_rows,
        {{ count_if("tokens_seen.seen_in = 'wallet_events'") }} as wallet_event_rows

    from tokens_seen
    left join requested_tokens
        on tokens_seen.token_ref = requested_tokens.token_ref
    where requested_tokens.token_ref is null
    group by tokens_seen.token_ref

),

missing_requested as (

    select
        'missing_token_requested' as exception_type,
        token_ref,
        wallet_id,
        cast(null as integer) as token_version,
        first_seen_at as observed_at,
        case when transition_rows > 0 then 'token_state_transitions' else 'wallet_events' end as source_table,
        source_location,
        cast(null as {{ dbt.type_string() }}) as column_name,
        {{ dbt.concat([
            "'no TokenRequested transition; seen in '",
            'cast(transition_rows as ' ~ dbt.type_string() ~ ')', "' transition(s) and '",
            'cast(wallet_event_rows as ' ~ dbt.type_string() ~ ')', "' wallet event(s)'"]) }} as evidence

    from unrequested

),

pan_findings as (

    select
        'pan_like_value' as exception_type,
        token_ref,
        wallet_id,
        cast(null as integer) as token_version,
        observed_at,
        source_table,
        source_location,
        column_name,
        {{ dbt.concat([
            "'column '", 'column_name', "' holds '",
            'cast(pan_like_runs as ' ~ dbt.type_string() ~ ')',
            "' Luhn-valid 13-19 digit run(s), e.g. '", 'masked_value']) }} as evidence

    from pan_like_values

),

chain_breaks as (

    select
        'hash_chain_break' as exception_type,
        token_ref,
        wallet_id,
        token_version,
        occurred_at as observed_at,
        'token_state_transitions' as source_table,
        source_location,
        cast(null as {{ dbt.type_string() }}) as column_name,
        {{ dbt.concat(["'chain status '", 'chain_status',
                       "' at version '", 'cast(token_version as ' ~ dbt.type_string() ~ ')']) }} as evidence

    from audited
    -- the row's own links; a row that only disagrees with the checkpoints is named, with
    -- its token, by the chain findings below
    where chain_status in ('version_gap', 'prev_hash_mismatch', 'row_hash_mismatch')

),

chain_findings as (

    select
        chain_verdict as exception_type,
        token_ref,
        wallet_id,
        finding_version as token_version,
        observed_at,
        'token_state_transitions' as source_table,
        {{ dbt.concat(["'pg:token_state_transitions?token_ref='", 'token_ref']) }} as source_location,
        cast(null as {{ dbt.type_string() }}) as column_name,
        evidence

    from token_chains
    where chain_verdict <> 'intact'

),

checkpoint_sequence as (

    select
        checkpoint_seq,
        taken_at,
        prev_digest,
        coalesce(s3_key, {{ dbt.concat(["'checkpoint:'", 'cast(checkpoint_seq as ' ~ dbt.type_string() ~ ')']) }}) as source_location,
        lag(checkpoint_seq) over (order by checkpoint_seq) as previous_seq,
        lag(digest) over (order by checkpoint_seq) as previous_digest

    from checkpoint_log

),

checkpoint_gaps as (

    select
        'checkpoint_missing' as exception_type,
        cast(null as {{ dbt.type_string() }}) as token_ref,
        cast(null as {{ dbt.type_string() }}) as wallet_id,
        cast(null as integer) as token_version,
        taken_at as observed_at,
        'chain_checkpoint_log' as source_table,
        source_location,
        'seq' as column_name,
        {{ dbt.concat([
            "'checkpoint(s) '", 'cast(coalesce(previous_seq, 0) + 1 as ' ~ dbt.type_string() ~ ')',
            "'..'", 'cast(checkpoint_seq - 1 as ' ~ dbt.type_string() ~ ')', "' are missing'"]) }} as evidence

    from checkpoint_sequence
    where not {{ positively_equal('checkpoint_seq', 'coalesce(previous_seq, 0) + 1') }}

),

checkpoint_breaks as (

    select
        'checkpoint_missing' as exception_type,
        cast(null as {{ dbt.type_string() }}) as token_ref,
        cast(null as {{ dbt.type_string() }}) as wallet_id,
        cast(null as integer) as token_version,
        taken_at as observed_at,
        'chain_checkpoint_log' as source_table,
        source_location,
        'prev_digest' as column_name,
        {{ dbt.concat([
            "'checkpoint '", 'cast(checkpoint_seq as ' ~ dbt.type_string() ~ ')',
            "' does not follow the checkpoint before it'"]) }} as evidence

    from checkpoint_sequence
    where {{ null_safe_differs('prev_digest', 'previous_digest') }}

),

findings as (

    select * from illegal_transitions
    union all
    select * from late_recording
    union all
    select * from late_arrival
    union all
    select * from implausible_transition_times
    union all
    select * from implausible_event_times
    union all
    select * from used_after_expiry
    union all
    select * from resumes
    union all
    select * from missing_requested
    union all
    select * from pan_findings
    union all
    select * from chain_breaks
    union all
    select * from chain_findings
    union all
    select * from checkpoint_gaps
    union all
    select * from checkpoint_breaks

),

final as (

    select
        {{ composite_key(['findings.exception_type', 'findings.source_table', 'findings.source_location', 'findings.column_name']) }} as exception_id,
        findings.exception_type,
        exception_types.severity,
        findings.token_ref,
        findings.wallet_id,
        findings.token_version,
        findings.observed_at,
        cast(findings.observed_at as date) as observed_date,
        findings.source_table,
        findings.source_location,
        findings.column_name,
        findings.evidence

    from findings
    left join exception_types
        on findings.exception_type = exception_types.exception_type

)

select * from final
