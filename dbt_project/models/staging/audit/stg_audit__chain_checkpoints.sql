{#- One row per checkpointed transition (token_ref, transition_id): what the checkpoints say
    the row was. A row near a checkpoint boundary is recorded twice, and a row tampered with
    may be recorded again later with its seal broken; the reference is the first record whose
    seal held (else the first record: a row that was already forged when first recorded). -#}
with

source as (

    {{ with_load_seq(source('audit', 'chain_checkpoints'), 'chain_checkpoints') }}

),

renamed as (

    select
        cast(seq as bigint) as checkpoint_seq,
        token_ref,
        cast(version as integer) as checkpointed_version,
        cast(transition_id as bigint) as transition_id,
        row_hash as checkpoint_row_hash,
        content_hash as checkpoint_content_hash,
        coalesce(sealed, false) as is_sealed,
        {{ to_utc_timestamp('_loaded_at') }} as loaded_at,
        _load_seq as load_seq

    from source

),

ranked as (

    select
        *,
        row_number() over (
            partition by token_ref, transition_id
            order by case when is_sealed then 0 else 1 end, checkpoint_seq, loaded_at,
                checkpointed_version, checkpoint_content_hash
        ) as record_rank,
        count(*) over (partition by token_ref, transition_id) as checkpoint_records,
        max(loaded_at) over (partition by token_ref, transition_id) as last_loaded_at,
        max(load_seq) over (partition by token_ref, transition_id) as last_load_seq

    from renamed

),

final as (

    select
        {{ composite_key(['token_ref', 'transition_id']) }} as checkpointed_transition_id,
        token_ref,
        transition_id,
        checkpoint_seq,
        checkpointed_version,
        checkpoint_row_hash,
        checkpoint_content_hash,
        is_sealed,
        checkpoint_records,
        last_loaded_at as loaded_at,
        last_load_seq as load_seq

    from ranked
    where record_rank = 1

)

select * from final
