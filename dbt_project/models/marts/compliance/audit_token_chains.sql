{#- One row per token the log or the checkpoints know: the first thing wrong with its chain,
    by the rules and in the order of state_service/verify.py's verify_token, so the warehouse
    is a second, independent verifier of the transition log (it holds the log and the
    checkpoints, never a key: where Python checks a row's seal, this compares the row with what
    the checkpoints recorded of it while its seal held). Kinds, first match wins:

    1. token_erased: checkpointed rows, no row in the log;
    2. forked_version: two rows with one version (the first such version);
    3. rows that disagree with the checkpoints (a checkpointed row whose content or version
       changed, a row recorded unsealed, or a row no checkpoint holds that sits at or below the
       checkpointed head or in a token whose other rows moved):
       whole_chain_rewrite (every row, more than one), reordered_rows (the moved rows are a
       permutation of their versions), inserted_row (every moved row moved up one),
       deleted_row (every moved row moved down one), inserted_row (past the checkpointed
       head), else edited_row;
    4. deleted_row: a version gap (the first missing version), or the log ends before the
       checkpointed head (the version after its last row);
    5. edited_row: the plain chain breaks (prev_hash or row_hash, recomputed in SQL);
    6. checkpoint_mismatch: a row's content matches its checkpoint but its row_hash does not.

    Python alone can see token_attributes, token_head and unsealed_row (the tokens table and
    the seals stay in PostgreSQL); checkpoint_missing is about the checkpoints themselves
    (audit_exceptions).

    Incremental: a run recomputes the tokens whose rows audit_token_transitions recomputed, or
    that got checkpoint records, since the last run: records of the checkpoint loads above the
    highest this model holds (checkpoint_load_seq; loads are numbered in commit order, so a
    checkpoint load that commits after a run started is read by the next one, which a filter
    on its _loaded_at against the run's start missed). -#}
{{ config(materialized='incremental', unique_key='token_ref', cluster_by=['token_ref']) }}
{%- set text = dbt.type_string() %}
with

{% if is_incremental() -%}
touched_tokens as (

    select token_ref from {{ ref('audit_token_transitions') }}
    where transformed_at > {{ last_transformed_at() }}
    union
    select token_ref from {{ ref('stg_audit__chain_checkpoints') }}
    where load_seq > {{ incremental_watermark('checkpoint_load_seq') }}

),

{% endif -%}
transitions as {{ not_materialized() }} (

    select * from {{ ref('audit_token_transitions') }}
    {% if is_incremental() -%}
    where token_ref in (select token_ref from touched_tokens)
    {%- endif %}

),

checkpointed as {{ not_materialized() }} (

    select * from {{ ref('stg_audit__chain_checkpoints') }}
    {% if is_incremental() -%}
    where token_ref in (select token_ref from touched_tokens)
    {%- endif %}

),

checkpoint_log as (

    select * from {{ ref('stg_audit__chain_checkpoint_log') }}

),

checkpointed_tokens as (

    select
        token_ref,
        count(*) as checkpointed_rows,
        max(case when is_sealed then checkpointed_version end) as checkpoint_head_version,
        min(checkpoint_seq) as first_checkpoint_seq,
        min(loaded_at) as first_checkpoint_loaded_at

    from checkpointed
    group by token_ref

),

in_context as (

    select
        transitions.token_ref,
        transitions.transition_id,
        transitions.token_version,
        transitions.expected_version,
        transitions.previous_version,
        transitions.chain_status,
        transitions.checkpoint_status,
        transitions.checkpointed_version,
        transitions.wallet_id,
        transitions.occurred_at,
        coalesce(checkpointed_tokens.checkpoint_head_version, 0) as checkpoint_head_version,
        -- a row that moved: its checkpoint vouches for its content at another version, one
        -- the chain could hold (1 .. the last version + 1, as verify_token searches)
        coalesce(
            transitions.checkpoint_status = 'moved'
            and transitions.checkpointed_version >= 1
            and transitions.checkpointed_version <= max(transitions.token_version) over (
                partition by transitions.token_ref) + 1,
            false) as is_moved

    from transitions
    left join checkpointed_tokens
        on transitions.token_ref = checkpointed_tokens.token_ref

),

judged as (

    select
        in_context.*,
        coalesce(
            in_context.checkpoint_status in ('moved', 'content_changed', 'unsealed')
            or (in_context.checkpoint_status = 'not_checkpointed'
                and (in_context.token_version <= in_context.checkpoint_head_version
                     or max(case when in_context.is_moved then 1 else 0 end) over (
                            partition by in_context.token_ref) = 1)),
            false) as disagrees_with_checkpoints

    from in_context

),

moved as (

    select token_ref, token_version, checkpointed_version
    from judged
    where is_moved

),

moved_onto_moved as (

    -- moved rows whose checkpointed version is where another moved row sits: all of them
    -- when the rows were only shuffled among their versions
    select
        moved.token_ref,
        count(*) as moved_onto_moved_rows

    from moved
    inner join moved as target
        on moved.token_ref = target.token_ref
        and moved.checkpointed_version = target.token_version
    group by moved.token_ref

),

log_tokens as (

    select
        token_ref,
        count(*) as log_rows,
        max(wallet_id) as wallet_id,
        max(occurred_at) as last_occurred_at,
        min(token_version) as log_first_version,
        max(token_version) as log_head_version,
        min(case when previous_version = token_version then token_version end) as first_forked_version,
        {{ count_if('disagrees_with_checkpoints') }} as disagreeing_rows,
        {{ count_if('is_moved') }} as moved_rows,
        {{ count_if('is_moved and checkpointed_version = token_version - 1') }} as moved_up_rows,
        {{ count_if('is_moved and checkpointed_version = token_version + 1') }} as moved_down_rows,
        min(case when disagrees_with_checkpoints and not is_moved then token_version end) as first_stuck_version,
        min(case when is_moved then token_version end) as first_moved_version,
        min(case when token_version > expected_version then expected_version end) as first_missing_version,
        min(case when chain_status in ('prev_hash_mismatch', 'row_hash_mismatch') then token_version end) as first_chain_break_version,
        min(case when checkpoint_status = 'row_hash_differs' then token_version end) as first_row_hash_differs_version

    from judged
    group by token_ref

),

all_tokens as (

    select token_ref from log_tokens
    union
    select token_ref from checkpointed_tokens

),

facts as (

    select
        all_tokens.token_ref,
        log_tokens.wallet_id,
        log_tokens.last_occurred_at,
        coalesce(log_tokens.log_rows, 0) as log_rows,
        log_tokens.log_first_version,
        log_tokens.log_head_version,
        coalesce(checkpointed_tokens.checkpointed_rows, 0) as checkpointed_rows,
        coalesce(checkpointed_tokens.checkpoint_head_version, 0) as checkpoint_head_version,
        checkpointed_tokens.first_checkpoint_seq,
        checkpointed_tokens.first_checkpoint_loaded_at,
        log_tokens.first_forked_version,
        coalesce(log_tokens.disagreeing_rows, 0) as disagreeing_rows,
        coalesce(log_tokens.moved_rows, 0) as moved_rows,
        coalesce(log_tokens.moved_up_rows, 0) as moved_up_rows,
        coalesce(log_tokens.moved_down_rows, 0) as moved_down_rows,
        coalesce(moved_onto_moved.moved_onto_moved_rows, 0) as moved_onto_moved_rows,
        log_tokens.first_stuck_version,
        log_tokens.first_moved_version,
        coalesce(log_tokens.first_stuck_version, log_tokens.first_moved_version) as first_disagreeing_version,
        log_tokens.first_missing_version,
        log_tokens.first_chain_break_version,
        log_tokens.first_row_hash_differs_version

    from all_tokens
    left join log_tokens
        on all_tokens.token_ref = log_tokens.token_ref
    left join checkpointed_tokens
        on all_tokens.token_ref = checkpointed_tokens.token_ref
    left join moved_onto_moved
        on all_tokens.token_ref = moved_onto_moved.token_ref

),

verdicts as (

    select
        facts.*,
        case
            when facts.log_rows = 0 then 'token_erased'
            when facts.first_forked_version is not null then 'forked_version'
            when facts.disagreeing_rows > 0 then
                case
                    when facts.disagreeing_rows = facts.log_rows and facts.log_rows > 1
                        then 'whole_chain_rewrite'
                    when facts.moved_rows > 0 and facts.first_stuck_version is null
                         and facts.moved_onto_moved_rows = facts.moved_rows
                        then 'reordered_rows'
                    when facts.moved_rows > 0 and facts.moved_up_rows = facts.moved_rows
                        then 'inserted_row'
                    when facts.moved_rows > 0 and facts.moved_down_rows = facts.moved_rows
                        then 'deleted_row'
                    when facts.checkpoint_head_version > 0
                         and facts.first_disagreeing_version > facts.checkpoint_head_version
                        then 'inserted_row'
                    else 'edited_row'
                end
            when facts.first_missing_version is not null then 'deleted_row'
            when facts.log_first_version < 1 then 'deleted_row'
            when facts.checkpoint_head_version > facts.log_head_version then 'deleted_row'
            when facts.first_chain_break_version is not null then 'edited_row'
            when facts.first_row_hash_differs_version is not null then 'checkpoint_mismatch'
            else 'intact'
        end as chain_verdict,
        case
            when facts.log_rows = 0 then {{ dbt.concat([
                'cast(facts.checkpointed_rows as ' ~ text ~ ')',
                "' checkpointed row(s) and no row in the log'"]) }}
            when facts.first_forked_version is not null then {{ dbt.concat([
                "'more than one row carries version '",
                'cast(facts.first_forked_version as ' ~ text ~ ')']) }}
            when facts.disagreeing_rows > 0 then
                case
                    when facts.disagreeing_rows = facts.log_rows and facts.log_rows > 1 then {{ dbt.concat([
                        "'none of the token''s '", 'cast(facts.log_rows as ' ~ text ~ ')',
                        "' rows matches what the checkpoints recorded'"]) }}
                    when facts.moved_rows > 0 and facts.first_stuck_version is null
                         and facts.moved_onto_moved_rows = facts.moved_rows then {{ dbt.concat([
                        'cast(facts.moved_rows as ' ~ text ~ ')',
                        "' row(s) sit at versions the checkpoints recorded other rows at (first: version '",
                        'cast(facts.first_moved_version as ' ~ text ~ ')', "')'"]) }}
                    when facts.moved_rows > 0 and facts.moved_up_rows = facts.moved_rows then {{ dbt.concat([
                        "'a row was inserted at version '",
                        'cast(facts.first_disagreeing_version as ' ~ text ~ ')', "'; the '",
                        'cast(facts.moved_rows as ' ~ text ~ ')',
                        "' row(s) after it were moved up and re-hashed'"]) }}
                    when facts.moved_rows > 0 and facts.moved_down_rows = facts.moved_rows then {{ dbt.concat([
                        "'the row checkpointed at version '",
                        'cast(facts.first_moved_version as ' ~ text ~ ')', "' is gone; the '",
                        'cast(facts.moved_rows as ' ~ text ~ ')',
                        "' row(s) after it were moved down and re-hashed'"]) }}
                    when facts.checkpoint_head_version > 0
                         and facts.first_disagreeing_version > facts.checkpoint_head_version then {{ dbt.concat([
                        "'version '", 'cast(facts.first_disagreeing_version as ' ~ text ~ ')',
                        "' is past the checkpointed head (version '",
                        'cast(facts.checkpoint_head_version as ' ~ text ~ ')',
                        "') and no checkpoint vouches for it'"]) }}
                    else 'the row differs from what the checkpoints recorded (edited, then re-hashed)'
                end
            when facts.first_missing_version is not null then {{ dbt.concat([
                "'version '", 'cast(facts.first_missing_version as ' ~ text ~ ')', "' is missing'"]) }}
            when facts.log_first_version < 1 then 'versions are not 1..n'
            when facts.checkpoint_head_version > facts.log_head_version then {{ dbt.concat([
                "'a checkpoint recorded version '",
                'cast(facts.checkpoint_head_version as ' ~ text ~ ')', "'; the log ends at '",
                'cast(facts.log_head_version as ' ~ text ~ ')']) }}
            when facts.first_chain_break_version is not null
                then 'prev_hash or row_hash does not match (recomputed in SQL): the row was edited in place'
            when facts.first_row_hash_differs_version is not null
                then 'a checkpoint recorded another row_hash for this row'
        end as evidence

    from facts

),

located as (

    select
        verdicts.*,
        case verdicts.chain_verdict
            when 'token_erased' then cast(null as integer)
            when 'forked_version' then verdicts.first_forked_version
            when 'whole_chain_rewrite' then 1
            when 'reordered_rows' then verdicts.first_moved_version
            when 'deleted_row' then
                case
                    when verdicts.disagreeing_rows > 0 then verdicts.first_moved_version
                    when verdicts.first_missing_version is not null then verdicts.first_missing_version
                    when verdicts.log_first_version < 1 then cast(null as integer)
                    else verdicts.log_head_version + 1
                end
            when 'inserted_row' then verdicts.first_disagreeing_version
            when 'edited_row' then
                case when verdicts.disagreeing_rows > 0 then verdicts.first_disagreeing_version
                     else verdicts.first_chain_break_version end
            when 'checkpoint_mismatch' then verdicts.first_row_hash_differs_version
        end as finding_version

    from verdicts

),

found_rows as (

    -- when the named version has a row, the finding happened when that row did
    select
        located.token_ref,
        min(transitions.occurred_at) as occurred_at

    from located
    inner join transitions
        on located.token_ref = transitions.token_ref
        and located.finding_version = transitions.token_version
    where located.chain_verdict <> 'intact'
    group by located.token_ref

),

final as (

    select
        located.token_ref,
        located.wallet_id,
        located.chain_verdict,
        located.finding_version,
        located.evidence,
        case when located.chain_verdict <> 'intact' then
            coalesce(found_rows.occurred_at, located.last_occurred_at, checkpoint_log.taken_at,
                     located.first_checkpoint_loaded_at)
        end as observed_at,
        located.log_rows,
        located.log_head_version,
        located.checkpointed_rows,
        located.checkpoint_head_version,
        located.disagreeing_rows,
        located.moved_rows,
        coalesce(checkpoint_loads.checkpoint_load_seq, 0) as checkpoint_load_seq,
        {{ transformed_at() }} as transformed_at

    from located
    left join found_rows
        on located.token_ref = found_rows.token_ref
    left join (
        select token_ref, max(load_seq) as checkpoint_load_seq
        from checkpointed
        group by token_ref
    ) as checkpoint_loads
        on located.token_ref = checkpoint_loads.token_ref
    left join checkpoint_log
        on located.first_checkpoint_seq = checkpoint_log.checkpoint_seq

)

select * from final
